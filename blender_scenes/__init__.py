"""Balanced synthetic scenes: design configs, planning, labels and questions (no bpy), rendering with
bpy (`blender_scenes.render`, the only subpackage that imports it), annotations and the audit."""

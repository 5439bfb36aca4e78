"""Rendering with Blender's `bpy`: the only subpackage that imports it (besides asset import).

`shapes` builds the built-in meshes, `camera` holds the projection math, `flat` and `solid` turn scene
specs into pixels and an object-index map, `worker` runs them in a process that imports bpy once."""

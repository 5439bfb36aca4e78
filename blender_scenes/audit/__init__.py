"""The dataset audit: recount a rendered dataset from its files, test balance, split hygiene, integrity and
every label against the pixels, and write a report (JSON, Markdown, self-contained HTML). Reads files only:
no bpy here. `blender_scenes.audit.run.audit_path` is the one entry point (`scenes2real audit`); this file
imports nothing, so the CLI starts fast."""

"""Camera geometry without bpy: a perspective camera looking at the origin from elevation/azimuth/
distance, projection of world points to pixels and casting a pixel back onto a horizontal plane.

The renderer sets Blender's camera from the same matrix, so these numbers are Blender's numbers."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SENSOR_MM = 36.0


@dataclass(frozen=True)
class Camera:
    matrix_world: np.ndarray   # 4x4, Blender convention: camera looks along its -Z, +Y is up
    lens: float
    width: int
    height: int

    @classmethod
    def looking_at_origin(cls, elevation: float, azimuth: float, distance: float, lens: float,
                          width: int, height: int) -> "Camera":
        el, az = math.radians(elevation), math.radians(azimuth)
        # azimuth 0 puts the camera on the -Y side, looking towards +Y
        eye = np.array([distance * math.cos(el) * math.sin(az), -distance * math.cos(el) * math.cos(az),
                        distance * math.sin(el)])
        back = eye / np.linalg.norm(eye)                  # camera +Z
        right = np.cross([0.0, 0.0, 1.0], back)
        if np.linalg.norm(right) < 1e-9:                  # straight down
            right = np.array([math.cos(az), math.sin(az), 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(back, right)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, eye
        return cls(m, lens, width, height)

    @property
    def focal_px(self) -> float:
        # Blender's sensor fit AUTO: the 36 mm sensor spans the larger image side
        return self.lens / SENSOR_MM * max(self.width, self.height)

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> pixel coordinates (N, 2), origin at the top-left image corner."""
        r, t = self.matrix_world[:3, :3], self.matrix_world[:3, 3]
        pc = (points - t) @ r          # camera coordinates
        z = -pc[:, 2]
        u = self.width / 2 + self.focal_px * pc[:, 0] / z
        v = self.height / 2 - self.focal_px * pc[:, 1] / z
        return np.stack([u, v], 1)

    def cast(self, u: float, v: float, plane_z: float = 0.0) -> np.ndarray:
        """The point on the plane z = plane_z seen at pixel (u, v)."""
        d_cam = np.array([(u - self.width / 2) / self.focal_px, -(v - self.height / 2) / self.focal_px, -1.0])
        d = self.matrix_world[:3, :3] @ d_cam
        o = self.matrix_world[:3, 3]
        if d[2] >= 0:
            raise ValueError(f"pixel ({u:.1f}, {v:.1f}) looks above the horizon")
        s = (plane_z - o[2]) / d[2]
        return o + s * d

    def to_json(self) -> dict:
        return {"type": "perspective", "lens_mm": self.lens, "sensor_mm": SENSOR_MM,
                "matrix_world": self.matrix_world.round(9).tolist()}

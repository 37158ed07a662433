// Basin: the Landscape tab's 3-D surface. Each vertex is a grid cell centre (x, y in [-1, 1]
// across the plane, z its value on the colour scale) with its colour-bar colour; the view is
// one 4x4 matrix (orthographic: rotate about z by the yaw, tilt about x, scale into clip space).
//
// Drawn by `src/gui/surface_view.rs` inside egui's render pass (no depth buffer: triangles come
// sorted far to near on the CPU). Its CPU twin `project` applies the same column-major matrix;
// a GUI test renders a surface through this shader and checks the pixels where `project` puts
// known points. Conventions the Rust side relies on:
// - vertex buffer: 7 f32 per vertex, position (location 0, vec3) then colour (location 1,
//   vec4, sRGB-encoded 0..1 as egui's Color32);
// - binding 0 is the uniform below (80 bytes).

struct View {
    // Column-major, as WGSL stores mat4x4.
    view_proj: mat4x4<f32>,
    // 1.0 when the target texture is sRGB (the hardware encodes: output linear), else 0.0.
    srgb_target: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> view: View;

struct VertexOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) color: vec4<f32>,
}

@vertex
fn vs_main(@location(0) position: vec3<f32>, @location(1) color: vec4<f32>) -> VertexOut {
    var out: VertexOut;
    out.clip = view.view_proj * vec4<f32>(position, 1.0);
    out.color = color;
    return out;
}

// sRGB-encoded channel → linear.
fn to_linear(c: f32) -> f32 {
    if c <= 0.04045 {
        return c / 12.92;
    }
    return pow((c + 0.055) / 1.055, 2.4);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    if view.srgb_target > 0.5 {
        return vec4<f32>(to_linear(in.color.r), to_linear(in.color.g), to_linear(in.color.b), in.color.a);
    }
    return in.color;
}

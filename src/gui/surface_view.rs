//! The Landscape tab's 3-D view: the slice as a surface drawn with wgpu inside egui's render
//! pass (a paint callback running `shaders/surface.wgsl`), rotated with the mouse.
//!
//! egui's pass has no depth buffer, so triangles are sorted far to near on the CPU with
//! [`project`], the CPU twin of the shader's vertex transform (the same column-major matrix);
//! a GUI test checks that pixels land where `project` says.

use std::sync::Arc;

use eframe::egui::{self, Color32};
use eframe::egui_wgpu::{self, wgpu};

/// `shaders/surface.wgsl`.
const SURFACE_WGSL: &str = include_str!("../../shaders/surface.wgsl");

/// Floats per vertex: position (3) and sRGB colour (4).
pub const VERTEX_FLOATS: usize = 7;

/// A vertex of the surface: (x, y) across the plane in [-1, 1], z the value on the colour scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurfaceVertex {
    pub pos: [f32; 3],
    pub color: Color32,
}

/// Height of the surface between the lowest and highest value, in the units of x and y.
pub const SURFACE_HEIGHT: f32 = 0.8;

/// The triangles of a grid's surface (two per square of four finite neighbouring cells), with
/// each vertex coloured by `color` and raised by `height` ∈ [0, 1]. `values` row by row from
/// the lowest β.
pub fn surface_triangles(
    values: &[f64],
    nx: usize,
    ny: usize,
    height: &dyn Fn(f64) -> f64,
    color: &dyn Fn(f64) -> Color32,
) -> Vec<[SurfaceVertex; 3]> {
    let mut out = Vec::new();
    if nx < 2 || ny < 2 || values.len() != nx * ny {
        return out;
    }
    let vertex = |i: usize, j: usize| -> Option<SurfaceVertex> {
        let v = values[j * nx + i];
        v.is_finite().then(|| SurfaceVertex {
            pos: [
                2.0 * i as f32 / (nx - 1) as f32 - 1.0,
                2.0 * j as f32 / (ny - 1) as f32 - 1.0,
                (height(v) as f32 - 0.5) * SURFACE_HEIGHT,
            ],
            color: color(v),
        })
    };
    for j in 0..ny - 1 {
        for i in 0..nx - 1 {
            let (Some(a), Some(b), Some(c), Some(d)) = (
                vertex(i, j),
                vertex(i + 1, j),
                vertex(i + 1, j + 1),
                vertex(i, j + 1),
            ) else {
                continue;
            };
            out.push([a, b, c]);
            out.push([a, c, d]);
        }
    }
    out
}

/// The view: rotate about z by `yaw_deg`, tilt the plane away by `tilt_deg` (0: seen from
/// straight above), then scale into clip space for a viewport of aspect `width / height`
/// (orthographic; z ends in [0.07, 0.93], inside the clip volume). Column-major.
pub fn view_matrix(yaw_deg: f32, tilt_deg: f32, aspect: f32) -> [[f32; 4]; 4] {
    let (sy, cy) = yaw_deg.to_radians().sin_cos();
    let (st, ct) = (-tilt_deg).to_radians().sin_cos();
    // The unit cube's diagonal (√3 ≈ 1.73) fits the smaller side.
    let fit = 0.55;
    let (kx, ky) = if aspect >= 1.0 {
        (fit / aspect, fit)
    } else {
        (fit, fit * aspect)
    };
    // Rows of R = Rx(−tilt)·Rz(yaw).
    let r = [
        [cy, -sy, 0.0],
        [ct * sy, ct * cy, -st],
        [st * sy, st * cy, ct],
    ];
    // clip = [kx·r0·p, ky·r1·p, 0.5 + 0.25·r2·p, 1].
    let rows = [
        [kx * r[0][0], kx * r[0][1], kx * r[0][2], 0.0],
        [ky * r[1][0], ky * r[1][1], ky * r[1][2], 0.0],
        [0.25 * r[2][0], 0.25 * r[2][1], 0.25 * r[2][2], 0.5],
        [0.0, 0.0, 0.0, 1.0],
    ];
    // Column-major: m[col][row].
    let mut m = [[0.0f32; 4]; 4];
    for (row, values) in rows.iter().enumerate() {
        for (col, v) in values.iter().enumerate() {
            m[col][row] = *v;
        }
    }
    m
}

/// The CPU twin of the shader's vertex transform: clip = m · (p, 1).
pub fn project(m: &[[f32; 4]; 4], p: [f32; 3]) -> [f32; 4] {
    let v = [p[0], p[1], p[2], 1.0];
    let mut out = [0.0f32; 4];
    for (row, o) in out.iter_mut().enumerate() {
        *o = (0..4).map(|col| m[col][row] * v[col]).sum();
    }
    out
}

/// Clip coordinates → a position in `rect` (points): x right, y down.
pub fn to_screen(rect: egui::Rect, clip: [f32; 4]) -> egui::Pos2 {
    egui::pos2(
        rect.left() + (clip[0] / clip[3] + 1.0) * 0.5 * rect.width(),
        rect.top() + (1.0 - clip[1] / clip[3]) * 0.5 * rect.height(),
    )
}

/// The triangles' vertex floats, far to near (nearest drawn last, as there is no depth test).
pub fn sorted_vertex_floats(triangles: &[[SurfaceVertex; 3]], m: &[[f32; 4]; 4]) -> Vec<f32> {
    let mut order: Vec<(f32, usize)> = triangles
        .iter()
        .enumerate()
        .map(|(k, t)| {
            // Clip z grows towards the viewer (0.5 + 0.25·depth).
            let z: f32 = t.iter().map(|v| project(m, v.pos)[2]).sum();
            (z, k)
        })
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = Vec::with_capacity(triangles.len() * 3 * VERTEX_FLOATS);
    for (_, k) in order {
        for v in &triangles[k] {
            let [r, g, b, a] = v.color.to_array();
            out.extend_from_slice(&v.pos);
            out.extend([r, g, b, a].map(|c| f32::from(c) / 255.0));
        }
    }
    out
}

/// The pipeline and buffers, kept in egui-wgpu's callback resources.
pub struct SurfaceResources {
    pipeline: wgpu::RenderPipeline,
    bind_group: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    vertices: Option<wgpu::Buffer>,
    vertex_count: u32,
    srgb_target: bool,
}

/// Creates the pipeline for the window's target format and stores it with the renderer.
/// Without it (no wgpu renderer) the 3-D view says so instead of drawing.
pub fn install(render_state: &egui_wgpu::RenderState) {
    let device = &render_state.device;
    let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("basin-surface"),
        source: wgpu::ShaderSource::Wgsl(SURFACE_WGSL.into()),
    });
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("basin-surface"),
        entries: &[wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("basin-surface"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("basin-surface"),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &shader,
            entry_point: Some("vs_main"),
            compilation_options: Default::default(),
            buffers: &[Some(wgpu::VertexBufferLayout {
                array_stride: (VERTEX_FLOATS * 4) as u64,
                step_mode: wgpu::VertexStepMode::Vertex,
                attributes: &[
                    wgpu::VertexAttribute {
                        format: wgpu::VertexFormat::Float32x3,
                        offset: 0,
                        shader_location: 0,
                    },
                    wgpu::VertexAttribute {
                        format: wgpu::VertexFormat::Float32x4,
                        offset: 12,
                        shader_location: 1,
                    },
                ],
            })],
        },
        fragment: Some(wgpu::FragmentState {
            module: &shader,
            entry_point: Some("fs_main"),
            compilation_options: Default::default(),
            targets: &[Some(wgpu::ColorTargetState {
                format: render_state.target_format,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
        }),
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        multiview_mask: None,
        cache: None,
    });
    let uniform = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("basin-surface-view"),
        size: 80,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("basin-surface"),
        layout: &layout,
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }],
    });
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(SurfaceResources {
            pipeline,
            bind_group,
            uniform,
            vertices: None,
            vertex_count: 0,
            srgb_target: render_state.target_format.is_srgb(),
        });
}

/// One frame's surface: its sorted vertices and view.
pub struct SurfaceCallback {
    pub vertices: Arc<Vec<f32>>,
    pub view: [[f32; 4]; 4],
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl egui_wgpu::CallbackTrait for SurfaceCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(r) = resources.get_mut::<SurfaceResources>() else {
            return Vec::new();
        };
        let mut uniform: Vec<f32> = self.view.iter().flatten().copied().collect();
        uniform.extend([if r.srgb_target { 1.0 } else { 0.0 }, 0.0, 0.0, 0.0]);
        queue.write_buffer(&r.uniform, 0, &f32_bytes(&uniform));
        let bytes = f32_bytes(&self.vertices);
        let fits = r
            .vertices
            .as_ref()
            .is_some_and(|b| b.size() >= bytes.len() as u64);
        if !fits && !bytes.is_empty() {
            r.vertices = Some(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("basin-surface-vertices"),
                size: bytes.len() as u64,
                usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        if let Some(b) = &r.vertices
            && !bytes.is_empty()
        {
            queue.write_buffer(b, 0, &bytes);
        }
        r.vertex_count = (self.vertices.len() / VERTEX_FLOATS) as u32;
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(r) = resources.get::<SurfaceResources>() else {
            return;
        };
        let Some(vertices) = &r.vertices else {
            return;
        };
        if r.vertex_count == 0 {
            return;
        }
        pass.set_pipeline(&r.pipeline);
        pass.set_bind_group(0, &r.bind_group, &[]);
        pass.set_vertex_buffer(0, vertices.slice(..));
        pass.draw(0..r.vertex_count, 0..1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_is_column_major_and_top_down_at_zero_tilt() {
        let m = view_matrix(0.0, 0.0, 1.0);
        // Seen from above: x right, y up, z towards the viewer (clip z above 0.5).
        let c = project(&m, [1.0, 0.0, 0.0]);
        assert!((c[0] - 0.55).abs() < 1e-6 && c[1].abs() < 1e-6 && c[3] == 1.0);
        let c = project(&m, [0.0, 1.0, 0.0]);
        assert!(c[0].abs() < 1e-6 && (c[1] - 0.55).abs() < 1e-6);
        let c = project(&m, [0.0, 0.0, 1.0]);
        assert!((c[2] - 0.75).abs() < 1e-6);
        // The translation lives in the last column (index 3), as WGSL expects.
        assert_eq!(m[3], [0.0, 0.0, 0.5, 1.0]);
        // Tilted, higher points move up the screen and the front (low y) comes nearer.
        let t = view_matrix(0.0, 60.0, 1.0);
        assert!(project(&t, [0.0, 0.0, 0.4])[1] > 0.0);
        assert!(project(&t, [0.0, -1.0, 0.0])[2] > project(&t, [0.0, 1.0, 0.0])[2]);
        // Every corner of the cube stays inside the clip volume at any angle and aspect.
        for (yaw, tilt, aspect) in [(30.0, 60.0, 1.0), (200.0, 80.0, 2.5), (-45.0, 10.0, 0.4)] {
            let m = view_matrix(yaw, tilt, aspect);
            for x in [-1.0, 1.0] {
                for y in [-1.0, 1.0] {
                    for z in [-0.4, 0.4] {
                        let c = project(&m, [x, y, z]);
                        assert!(c[0].abs() <= 1.0 && c[1].abs() <= 1.0, "{c:?}");
                        assert!(c[2] > 0.0 && c[2] < 1.0, "{c:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn triangles_skip_missing_cells_and_sort_far_to_near() {
        let values = [0.0, 1.0, 2.0, 3.0, f64::NAN, 5.0];
        let tris = surface_triangles(&values, 3, 2, &|v| v / 5.0, &|_| Color32::WHITE);
        // Two squares, each touching the missing cell (1, 1): none drawn.
        assert!(tris.is_empty());
        let values = [0.0, 1.0, 2.0, 3.0];
        let tris = surface_triangles(&values, 2, 2, &|v| v / 3.0, &|_| Color32::WHITE);
        assert_eq!(tris.len(), 2);
        assert_eq!(tris[0][0].pos, [-1.0, -1.0, -0.4]);
        assert_eq!(tris[0][2].pos, [1.0, 1.0, 0.4]);
        let m = view_matrix(0.0, 60.0, 1.0);
        let floats = sorted_vertex_floats(&tris, &m);
        assert_eq!(floats.len(), 2 * 3 * VERTEX_FLOATS);
        let depth = |k: usize| -> f32 {
            (0..3)
                .map(|v| {
                    let o = (k * 3 + v) * VERTEX_FLOATS;
                    project(&m, [floats[o], floats[o + 1], floats[o + 2]])[2]
                })
                .sum()
        };
        assert!(depth(0) <= depth(1));
    }
}

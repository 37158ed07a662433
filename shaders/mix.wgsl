// Basin: one point on a straight line through weight space, out[i] = base[i] + c * delta[i].
//
// Launched by `src/model/mix_kernel.rs` (its tensor-op twin is `mix_reference` there; a test
// checks that both agree on lavapipe). Conventions the launcher relies on:
// - the entry point is `mix_weights` (`mix` is a WGSL built-in);
// - bindings 0..2 are the three f32 buffers in this order; binding 3 is the uniform cubecl
//   builds from the launch's custom info words (it always comes after the buffers);
// - the workgroup is 256 invocations, and the grid is 2-D: x is capped at 65,535 workgroups
//   (the WebGPU / Vulkan minimum limit per dimension) and y counts rows of x workgroups, so
//   any length up to 2^32 - 1 elements fits one dispatch; invocations past `len` do nothing.

struct Params {
    len: u32,
    c: f32,
    // Pads the struct to 16 bytes, the size uniform buffers are most comfortable with.
    _pad0: u32,
    _pad1: u32,
}

// All three are `read_write` although only `out_values` is written: cubecl sub-allocates
// tensors from shared wgpu buffers, so `base`, `delta` and `out` may be ranges of one buffer,
// and wgpu rejects a dispatch that binds one buffer both read-only and read-write ("conflicting
// usages"), poisoning the device. cubecl's own WGSL kernels do the same.
@group(0) @binding(0) var<storage, read_write> base_values: array<f32>;
@group(0) @binding(1) var<storage, read_write> delta_values: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_values: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const WORKGROUP_SIZE: u32 = 256u;

@compute @workgroup_size(256, 1, 1)
fn mix_weights(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let i = (group.y * groups.x + group.x) * WORKGROUP_SIZE + local;
    if (i < params.len) {
        out_values[i] = base_values[i] + params.c * delta_values[i];
    }
}

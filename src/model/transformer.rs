//! The decoder-only transformer shared by llama, mistral, qwen2 and qwen3: full-sequence forward
//! (teacher forcing) returning final hidden states. Backend-generic: the same code runs on the
//! CPU backend, on wgpu and on burn's autodiff wrapper (tensors live on a runtime `Device`).

use burn::tensor::{
    Bool, Device, Int, Tensor, TensorData, activation::silu, module::attention,
    ops::AttentionModuleOptions,
};

use super::{
    error::ModelError, linear::Linear, norm::RmsNorm, path_param::PathPoint, rope::RopeTables,
    row_blocks::RowBlocks,
};
use crate::checkpoint::model_config::ModelConfig;

/// Most elements of one MLP activation (`rows × seq × intermediate`) a forward materialises at
/// once: 1 M f32 = 4 MiB, which bounds the host memory a long batch adds on top of the weights.
const MLP_ACTIVATION_ELEMENTS: usize = 1024 * 1024;

/// One layer's cached keys and values `[batch, kv_heads, cached, head_dim]` (after RoPE, before
/// the grouped-query repeat); `None` before the first step.
pub type LayerKv = Option<(Tensor<4>, Tensor<4>)>;

/// Positions and visibility of every token of a batch `[batch, seq]`, for rows that are not
/// plain causal sequences (see [`super::packing::PackedRow`]). Padding tokens should see
/// themselves, so no softmax row is empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowLayout {
    /// `[batch * seq]`: each token's position in its own sequence.
    pub positions: Vec<u32>,
    /// `[batch * seq * seq]`: `visible[(b * seq + i) * seq + j]`: query i may attend to key j.
    pub visible: Vec<bool>,
}

#[derive(Debug, Clone)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    /// Per-head RMSNorm on q and k (qwen3).
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
}

#[derive(Debug, Clone)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

/// A causal language model. `lm_head` is `None` when the output projection is tied to the
/// input embedding. Every parameter is a [`PathParam`](super::path_param::PathParam) and every linear layer carries its LoRA
/// slots, so one model object serves a single checkpoint, a LoRA path, a two-adapter path and a
/// full-weight path; the [`PathPoint`] given to the forward says where on the path it runs.
#[derive(Debug, Clone)]
pub struct CausalLm {
    pub config: ModelConfig,
    /// `[vocab, hidden]`, in row blocks where one buffer cannot hold it.
    pub embed_tokens: RowBlocks,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `[vocab, hidden]` when untied, in row blocks as the embedding.
    pub lm_head: Option<RowBlocks>,
    /// Number of LoRA slots (adapters) the linear layers carry.
    pub lora_slots: usize,
    pub device: Device,
}

impl CausalLm {
    /// Final hidden states `[batch, seq, hidden]` for right-padded token ids `[batch, seq]`.
    ///
    /// Right padding needs no attention mask beyond causality: a real token only attends to
    /// earlier positions, which are real too. Outputs at padded positions are meaningless.
    pub fn hidden_states(&self, input_ids: Tensor<2, Int>, point: &PathPoint) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let rope = RopeTables::new(&self.config, seq, &self.device);
        let mask = self.sliding_window_mask(batch, seq);
        self.forward_hidden(input_ids, &rope, mask, point, None)
    }

    /// Final hidden states for rows laid out explicitly (packed rows: a shared prompt followed
    /// by several continuations, see [`super::packing`]): each token's position and which
    /// tokens it may attend to come from `layout` instead of the row index and causality.
    pub fn hidden_states_with_layout(
        &self,
        input_ids: Tensor<2, Int>,
        layout: &RowLayout,
        point: &PathPoint,
    ) -> Result<Tensor<3>, ModelError> {
        let [batch, seq] = input_ids.dims();
        if layout.positions.len() != batch * seq || layout.visible.len() != batch * seq * seq {
            return Err(ModelError::Input(format!(
                "row layout for {} positions and {} mask entries does not fit a [{batch}, {seq}] batch",
                layout.positions.len(),
                layout.visible.len()
            )));
        }
        let rope =
            RopeTables::at_positions(&self.config, &layout.positions, batch, seq, &self.device);
        let window = self.config.sliding_window;
        let mut masked = Vec::with_capacity(batch * seq * seq);
        for b in 0..batch {
            let pos = &layout.positions[b * seq..(b + 1) * seq];
            for i in 0..seq {
                for j in 0..seq {
                    let visible = layout.visible[(b * seq + i) * seq + j];
                    // transformers masks key j for query i when i - j >= window.
                    let outside_window =
                        window.is_some_and(|w| pos[i].saturating_sub(pos[j]) as usize >= w);
                    masked.push(!visible || outside_window);
                }
            }
        }
        let mask = AttnMask::per_row(
            masked,
            [batch, seq, seq],
            self.config.num_attention_heads,
            &self.device,
        );
        Ok(self.forward_hidden(input_ids, &rope, Some(mask), point, None))
    }

    /// The decoder stack; `mask` (true = may not attend) replaces plain causality when given.
    /// With `cache` (one entry per layer), each layer's keys and values are appended to the
    /// entry and attention runs over all of them (incremental decoding, see [`super::decode`]).
    pub(crate) fn forward_hidden(
        &self,
        input_ids: Tensor<2, Int>,
        rope: &RopeTables,
        mask: Option<AttnMask>,
        point: &PathPoint,
        mut cache: Option<&mut [LayerKv]>,
    ) -> Tensor<3> {
        // Rows are gathered from the base and from each delta and then mixed: the same f32
        // operations per element as mixing the whole table first, without materialising a
        // mixed [vocab, hidden] table on a full-weight path.
        let mut h = self.embed_tokens.embed(input_ids.clone(), &point.dense);
        for (i, layer) in self.layers.iter().enumerate() {
            let normed = layer.input_layernorm.forward(h.clone(), point);
            let kv = cache.as_deref_mut().and_then(|c| c.get_mut(i));
            let attn = self.attention(&layer.self_attn, normed, rope, mask.clone(), point, kv);
            h = h + attn;
            let normed = layer.post_attention_layernorm.forward(h.clone(), point);
            h = h + self.mlp(&layer.mlp, normed, point);
        }
        self.norm.forward(h, point)
    }

    /// `down(silu(gate(x)) · up(x))`, in groups of batch rows whose `[rows, seq, intermediate]`
    /// activations stay under [`MLP_ACTIVATION_ELEMENTS`] (the MLP is the widest part of the
    /// forward; rows are independent, so the result is the same as one call).
    fn mlp(&self, mlp: &Mlp, x: Tensor<3>, point: &PathPoint) -> Tensor<3> {
        mlp_in_row_groups(mlp, x, point, MLP_ACTIVATION_ELEMENTS)
    }

    /// The output projection `[vocab, hidden]` (the embedding when tied) as a path parameter (θ₀
    /// and its dense deltas) in row blocks, so callers can mix it a piece at a time.
    pub fn output_param(&self) -> &RowBlocks {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    fn sliding_window_mask(&self, batch: usize, seq: usize) -> Option<AttnMask> {
        let window = self.config.sliding_window?;
        if seq <= window {
            return None;
        }
        // transformers masks key j for query i when i - j >= window (and j > i by causality).
        let mut mask = Vec::with_capacity(seq * seq);
        for i in 0..seq {
            for j in 0..seq {
                mask.push(j > i || i - j >= window);
            }
        }
        Some(AttnMask::shared(
            mask,
            [batch, seq, seq],
            self.config.num_attention_heads,
            &self.device,
        ))
    }

    fn attention(
        &self,
        attn: &Attention,
        x: Tensor<3>,
        rope: &RopeTables,
        mask: Option<AttnMask>,
        point: &PathPoint,
        kv: Option<&mut LayerKv>,
    ) -> Tensor<3> {
        let c = &self.config;
        let [batch, seq, _] = x.dims();
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let split = |t: Tensor<3>, heads: usize, norm: &Option<RmsNorm>| -> Tensor<4> {
            let t = t.reshape([batch, seq, heads, hd]);
            let t = match norm {
                Some(n) => n.forward(t, point),
                None => t,
            };
            t.swap_dims(1, 2)
        };
        let q = split(attn.q_proj.forward(x.clone(), point), nh, &attn.q_norm);
        let k = split(attn.k_proj.forward(x.clone(), point), nkv, &attn.k_norm);
        let v = split(attn.v_proj.forward(x, point), nkv, &None);
        let q = rope.apply(q);
        let k = rope.apply(k);
        let (k, v) = match kv {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
                    None => (k, v),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        if let Some(out) = host_attention(&q, &k, &v, mask.as_ref()) {
            return attn.o_proj.forward(out, point);
        }
        let mask = mask.map(|m| m.tensor);
        let seq_k = k.dims()[2];
        let (k, v) = if nkv == nh {
            (k, v)
        } else {
            let groups = nh / nkv;
            let repeat = |t: Tensor<4>| -> Tensor<4> {
                t.unsqueeze_dim::<5>(2)
                    .expand([batch, nkv, groups, seq_k, hd])
                    .reshape([batch, nh, seq_k, hd])
            };
            (repeat(k), repeat(v))
        };
        let out = if q.is_tracked() {
            tracked_attention(q, k, v, mask)
        } else {
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: mask.is_none(),
            };
            attention(q, k, v, mask, None, options)
        };
        let out = out.swap_dims(1, 2).reshape([batch, seq, nh * hd]);
        attn.o_proj.forward(out, point)
    }
}

/// An attention mask (true = may not attend) as burn's attention takes it and as host booleans
/// for [`super::host_attention`].
#[derive(Debug, Clone)]
pub(crate) struct AttnMask {
    /// `[batch, heads, seq_q, seq_k]` (expanded, not copied, from the booleans).
    pub tensor: Tensor<4, Bool>,
    /// `[batch, seq_q, seq_k]`, or one `[seq_q, seq_k]` shared by the batch.
    pub masked: std::sync::Arc<Vec<bool>>,
    /// Elements between batch rows of `masked` (0 when shared).
    pub batch_stride: usize,
}

impl AttnMask {
    /// One mask per batch row: `masked` is `[batch, seq_q, seq_k]`.
    pub fn per_row(masked: Vec<bool>, dims: [usize; 3], heads: usize, device: &Device) -> Self {
        let [batch, seq_q, seq_k] = dims;
        let masked = std::sync::Arc::new(masked);
        let tensor =
            Tensor::<3, Bool>::from_data(TensorData::new(masked.as_ref().clone(), dims), device)
                .unsqueeze_dim::<4>(1)
                .expand([batch, heads, seq_q, seq_k]);
        Self {
            tensor,
            masked,
            batch_stride: seq_q * seq_k,
        }
    }

    /// One mask for every batch row: `masked` is `[seq_q, seq_k]`, `dims` `[batch, seq_q, seq_k]`.
    pub fn shared(masked: Vec<bool>, dims: [usize; 3], heads: usize, device: &Device) -> Self {
        let [batch, seq_q, seq_k] = dims;
        let masked = std::sync::Arc::new(masked);
        let tensor = Tensor::<2, Bool>::from_data(
            TensorData::new(masked.as_ref().clone(), [seq_q, seq_k]),
            device,
        )
        .unsqueeze::<4>()
        .expand([batch, heads, seq_q, seq_k]);
        Self {
            tensor,
            masked,
            batch_stride: 0,
        }
    }
}

/// Attention of untracked f32 tensors on the host CPU ([`super::host_attention`]: grouped heads
/// read in place, only keys up to the last visible one scored, a vectorised softmax), causal or
/// under `mask`, as `[batch, seq, heads · head_dim]`; `None` where it does not apply (then
/// burn's `attention`, its tested twin, runs).
fn host_attention(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    mask: Option<&AttnMask>,
) -> Option<Tensor<3>> {
    let device = q.device();
    let f32_only = [q, k, v]
        .iter()
        .all(|t| t.dtype() == burn::tensor::DType::F32 && !t.is_tracked());
    if !f32_only || !crate::compute::is_host_cpu(&device) {
        return None;
    }
    let [batch, heads, seq_q, head_dim] = q.dims();
    let [_, kv_heads, seq_k, _] = k.dims();
    let shape = super::host_attention::AttentionShape {
        batch,
        heads,
        kv_heads,
        seq_q,
        seq_k,
        head_dim,
    };
    let (qd, kd, vd) = (
        q.clone().into_data(),
        k.clone().into_data(),
        v.clone().into_data(),
    );
    let visibility = match mask {
        None => super::host_attention::Visibility::Causal,
        Some(m) => super::host_attention::Visibility::Masked {
            masked: &m.masked,
            batch_stride: m.batch_stride,
        },
    };
    let out = super::host_attention::attention(
        qd.as_slice::<f32>().ok()?,
        kd.as_slice::<f32>().ok()?,
        vd.as_slice::<f32>().ok()?,
        shape,
        visibility,
    )?;
    Some(Tensor::from_data(
        TensorData::new(out, [batch, seq_q, heads * head_dim]),
        &device,
    ))
}

/// Scaled dot-product attention of tracked tensors (training): the values of burn's attention
/// (the same operations: `q·kᵀ` scaled, masked with −∞ where `mask` is true or, without one,
/// where a key lies after its query, softmax over the keys, then `·v`) with softmax's gradient
/// built in the forward pass. The softmax `P` is computed off the graph and enters as
/// `P + P⊙D − P⊙Σ_k(P⊙D)` with `D = S − S.detach()` (zero in value) for the unmasked scores
/// `S`: the value is `P` and the Jacobian with respect to `S` is softmax's own,
/// `diag(P) − P·Pᵀ` per row. burn's softmax under autodiff would recompute every `exp` in the
/// backward pass (its `exp` keeps the input) and carry the max, clamp and division nodes.
fn tracked_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
) -> Tensor<4> {
    let [batch, heads, seq_q, head_dim] = q.dims();
    let seq_k = k.dims()[2];
    let device = q.device();
    let scale = 1.0 / (head_dim as f64).sqrt();
    let scores = q.matmul(k.swap_dims(2, 3)) * scale;
    let mask = match mask {
        Some(m) => m.inner(),
        None => {
            // Keys after their query (aligned at the last query, as burn's causal mask).
            let offset = seq_k - seq_q.min(seq_k);
            let causal: Vec<bool> = (0..seq_q)
                .flat_map(|i| (0..seq_k).map(move |j| j > i + offset))
                .collect();
            Tensor::<2, Bool>::from_data(TensorData::new(causal, [seq_q, seq_k]), &device)
                .inner()
                .unsqueeze::<4>()
                .expand([batch, heads, seq_q, seq_k])
        }
    };
    let masked = scores.clone().inner().mask_fill(mask, f32::NEG_INFINITY);
    let max = masked.clone().max_dim(3);
    let exps = (masked - max).exp();
    let probs = Tensor::<4>::from_inner(exps.clone() / exps.sum_dim(3));
    let zero = scores.clone() - scores.detach();
    let p_d = zero * probs.clone();
    (probs.clone() + p_d.clone() - probs * p_d.sum_dim(3)).matmul(v)
}

/// `silu(gate) · up`: in place in one host pass for untracked f32 tensors on the host CPU
/// ([`super::host_swiglu`], with a vectorised `exp`), the tensor ops (its tested twin) elsewhere.
fn silu_mul(gate: Tensor<3>, up: Tensor<3>) -> Tensor<3> {
    let device = gate.device();
    if gate.is_tracked()
        || up.is_tracked()
        || gate.dims() != up.dims()
        || gate.dtype() != burn::tensor::DType::F32
        || up.dtype() != burn::tensor::DType::F32
        || !crate::compute::is_host_cpu(&device)
    {
        return silu(gate) * up;
    }
    let mut g = gate.into_data();
    let u = up.into_data();
    if let (Ok(gs), Ok(us)) = (g.as_mut_slice::<f32>(), u.as_slice::<f32>()) {
        super::host_swiglu::silu_mul_in_place(gs, us);
        return Tensor::from_data(g, &device);
    }
    silu(Tensor::from_data(g, &device)) * Tensor::from_data(u, &device)
}

/// The MLP in groups of batch rows of at most `max_elements` activation elements each. On a
/// full-weight path each group mixes its weights again: they are small next to the activations
/// this bounds, and holding the three mixed matrices across groups would cost more memory.
fn mlp_in_row_groups(mlp: &Mlp, x: Tensor<3>, point: &PathPoint, max_elements: usize) -> Tensor<3> {
    let [batch, seq, _] = x.dims();
    let width = mlp.gate_proj.out_features().max(1);
    let rows = (max_elements / (seq * width).max(1)).clamp(1, batch.max(1));
    let run = |x: Tensor<3>, point: &PathPoint| {
        let gate = mlp.gate_proj.forward(x.clone(), point);
        let up = mlp.up_proj.forward(x, point);
        mlp.down_proj.forward(silu_mul(gate, up), point)
    };
    if rows >= batch {
        return run(x, point);
    }
    let parts = (0..batch)
        .step_by(rows)
        .map(|start| {
            let n = rows.min(batch - start);
            run(x.clone().narrow(0, start, n), &point.rows(start, n))
        })
        .collect();
    Tensor::cat(parts, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{checkpoint::open::open_model, checkpoint::peft::LoraAdapter};

    #[test]
    fn mlp_in_row_groups_equals_one_call() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
        let opened = open_model(&dir.join("llama")).unwrap();
        let adapter = LoraAdapter::open(dir.join("llama_lora")).unwrap();
        let device = Device::flex();
        let model = CausalLm::load(
            &opened.config,
            opened.tensors.as_ref(),
            Some(&adapter),
            &device,
        )
        .unwrap();
        let [batch, seq, hidden] = [5, 7, model.config.hidden_size];
        let data: Vec<f32> = (0..batch * seq * hidden)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let x = Tensor::<3>::from_data(TensorData::new(data, [batch, seq, hidden]), &device);
        // A different LoRA coefficient per row, so a row group must carry its own.
        let point = PathPoint {
            lora: vec![Tensor::<3>::from_data(
                TensorData::new(vec![0.0f32, 0.5, 1.0, -0.5, 2.0], [batch, 1, 1]),
                &device,
            )],
            dense: vec![],
            lora_dropout: 0.0,
        };
        let mlp = &model.layers[0].mlp;
        let whole = mlp_in_row_groups(mlp, x.clone(), &point, usize::MAX).into_data();
        let width = mlp.gate_proj.out_features();
        for rows in [1, 2, 4] {
            let grouped = mlp_in_row_groups(mlp, x.clone(), &point, rows * seq * width);
            let (a, b) = (
                whole.try_to_vec::<f32>().unwrap(),
                grouped.into_data().try_to_vec::<f32>().unwrap(),
            );
            assert_eq!(a.len(), b.len());
            let worst = a
                .iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-6, "{rows} rows per group: differs by {worst}");
        }
    }

    #[test]
    fn tracked_attention_has_burns_values_and_gradients() {
        let gpu = crate::compute::ComputeDevice::new(crate::compute::ComputeKind::Gpu)
            .expect("the wgpu tests need an adapter (lavapipe is enough)")
            .device;
        let (batch, heads, seq, hd) = (2, 3, 7, 8);
        let mut state = 11u64;
        let mut draw = |n: usize| crate::test_fixtures::uniform(&mut state, n, 3.0);
        let n = batch * heads * seq * hd;
        let (qd, kd, vd, wd) = (draw(n), draw(n), draw(n), draw(n));
        // A padded second row (its last two tokens see only themselves), as packed rows do.
        let explicit: Vec<bool> = (0..batch * heads)
            .flat_map(|bh| {
                (0..seq).flat_map(move |i| {
                    (0..seq).map(move |j| {
                        if bh >= heads && i >= seq - 2 {
                            i != j
                        } else {
                            j > i || (bh >= heads && j >= seq - 2)
                        }
                    })
                })
            })
            .collect();
        for device in [Device::flex(), gpu] {
            for with_mask in [false, true] {
                let run = |tracked: bool| {
                    let ad = device.clone().autodiff();
                    let leaf = |d: &Vec<f32>| {
                        Tensor::<4>::from_data(
                            TensorData::new(d.clone(), [batch, heads, seq, hd]),
                            &ad,
                        )
                        .require_grad()
                    };
                    let (q, k, v) = (leaf(&qd), leaf(&kd), leaf(&vd));
                    let mask = with_mask.then(|| {
                        Tensor::<4, Bool>::from_data(
                            TensorData::new(explicit.clone(), [batch, heads, seq, seq]),
                            &ad,
                        )
                    });
                    let out = if tracked {
                        tracked_attention(q.clone(), k.clone(), v.clone(), mask)
                    } else {
                        let options = AttentionModuleOptions {
                            scale: None,
                            softcap: None,
                            is_causal: mask.is_none(),
                        };
                        attention(q.clone(), k.clone(), v.clone(), mask, None, options)
                    };
                    let w = Tensor::<4>::from_data(
                        TensorData::new(wd.clone(), [batch, heads, seq, hd]),
                        &ad,
                    );
                    let grads = (out.clone() * w).sum().backward();
                    let vals = |t: Tensor<4>| t.inner().into_data().try_to_vec::<f32>().unwrap();
                    let g = |t: &Tensor<4>| vals(t.grad(&grads).unwrap());
                    (vals(out), [g(&q), g(&k), g(&v)])
                };
                let (out, grads) = run(true);
                let (want_out, want_grads) = run(false);
                assert_eq!(out, want_out, "{device:?}, mask {with_mask}");
                for (got, want) in grads.iter().zip(&want_grads) {
                    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
                    assert!(scale > 0.0);
                    for (a, b) in got.iter().zip(want) {
                        assert!(
                            (a - b).abs() <= 2e-6 * scale,
                            "{device:?}, mask {with_mask}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

//! Trainable LoRA factors on the same [`CausalLm`] the sweeps use.
//!
//! Training keeps the factors of one LoRA slot on the host ([`LoraFactors`], in the model's
//! layout) and, for each forward, turns them into autodiff leaves installed in that slot of every
//! adapted linear layer ([`attach`]). After `backward`, [`gradients`] reads each leaf's gradient
//! back. The base weights stay constants on the same (autodiff-enabled) device: no second model,
//! no merged copy, and burn records no graph for operations that touch only them.
//!
//! Layout: `a` is `[in, r]` (PEFT's `lora_A.weight` transposed) and `b` is `[r, out]` (PEFT's
//! `lora_B.weight` transposed, *unscaled*); the forward uses `b · scale`, so gradients are those of
//! PEFT's own parameters, transposed.

use burn::tensor::{Gradients, Tensor, TensorData};

use super::{error::ModelError, linear::Linear, transformer::CausalLm};

/// The linear layers a LoRA can adapt in each decoder layer: (sub-module, the name PEFT's
/// `target_modules` uses).
pub const LINEAR_MODULES: [(&str, &str); 7] = [
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
    ("mlp", "down_proj"),
];

/// One adapted module's factors on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraFactors {
    /// Hugging Face module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    pub rank: usize,
    pub in_features: usize,
    pub out_features: usize,
    /// PEFT's `scaling` (alpha/r, or alpha/√r with rsLoRA).
    pub scale: f32,
    /// `[in, r]`, row-major.
    pub a: Vec<f32>,
    /// `[r, out]`, row-major, unscaled.
    pub b: Vec<f32>,
}

impl LoraFactors {
    /// PEFT's `lora_A.weight` `[r, in]` and `lora_B.weight` `[out, r]` (row-major) in this layout.
    pub fn from_peft(
        module: &str,
        a_peft: &[f32],
        b_peft: &[f32],
        rank: usize,
        in_features: usize,
        out_features: usize,
        scale: f32,
    ) -> Result<Self, ModelError> {
        if a_peft.len() != rank * in_features || b_peft.len() != out_features * rank {
            return Err(ModelError::Input(format!(
                "LoRA factors of `{module}`: {} and {} values for rank {rank}, [{out_features}, {in_features}]",
                a_peft.len(),
                b_peft.len()
            )));
        }
        Ok(Self {
            module: module.to_string(),
            rank,
            in_features,
            out_features,
            scale,
            a: transpose(a_peft, rank, in_features),
            b: transpose(b_peft, out_features, rank),
        })
    }

    /// `lora_A.weight` `[r, in]`, row-major.
    pub fn a_peft(&self) -> Vec<f32> {
        transpose(&self.a, self.in_features, self.rank)
    }

    /// `lora_B.weight` `[out, r]`, row-major.
    pub fn b_peft(&self) -> Vec<f32> {
        transpose(&self.b, self.rank, self.out_features)
    }
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// The autodiff leaves of one forward, in the order of the factors they were made from.
pub struct LoraLeaves {
    leaves: Vec<(Tensor<2>, Tensor<2>)>,
}

impl CausalLm {
    /// The linear layer of a Hugging Face module name (`model.layers.3.mlp.up_proj`).
    pub fn linear_mut(&mut self, module: &str) -> Option<&mut Linear> {
        let rest = module.strip_prefix("model.layers.")?;
        let (index, rest) = rest.split_once('.')?;
        let layer = self.layers.get_mut(index.parse::<usize>().ok()?)?;
        let a = &mut layer.self_attn;
        let m = &mut layer.mlp;
        match rest {
            "self_attn.q_proj" => Some(&mut a.q_proj),
            "self_attn.k_proj" => Some(&mut a.k_proj),
            "self_attn.v_proj" => Some(&mut a.v_proj),
            "self_attn.o_proj" => Some(&mut a.o_proj),
            "mlp.gate_proj" => Some(&mut m.gate_proj),
            "mlp.up_proj" => Some(&mut m.up_proj),
            "mlp.down_proj" => Some(&mut m.down_proj),
            _ => None,
        }
    }

    /// The linear layer of a Hugging Face module name, read-only.
    pub fn linear(&self, module: &str) -> Option<&Linear> {
        let rest = module.strip_prefix("model.layers.")?;
        let (index, rest) = rest.split_once('.')?;
        let layer = self.layers.get(index.parse::<usize>().ok()?)?;
        let (a, m) = (&layer.self_attn, &layer.mlp);
        match rest {
            "self_attn.q_proj" => Some(&a.q_proj),
            "self_attn.k_proj" => Some(&a.k_proj),
            "self_attn.v_proj" => Some(&a.v_proj),
            "self_attn.o_proj" => Some(&a.o_proj),
            "mlp.gate_proj" => Some(&m.gate_proj),
            "mlp.up_proj" => Some(&m.up_proj),
            "mlp.down_proj" => Some(&m.down_proj),
            _ => None,
        }
    }

    /// Every adaptable linear layer's module name, in layer order.
    pub fn linear_module_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.layers.len() * LINEAR_MODULES.len());
        for i in 0..self.layers.len() {
            for (group, name) in LINEAR_MODULES {
                names.push(format!("model.layers.{i}.{group}.{name}"));
            }
        }
        names
    }

    /// Gives every linear layer at least `n` LoRA slots (new ones empty).
    pub fn ensure_lora_slots(&mut self, n: usize) {
        if self.lora_slots >= n {
            return;
        }
        for name in self.linear_module_names() {
            if let Some(linear) = self.linear_mut(&name)
                && linear.lora.len() < n
            {
                linear.lora.resize(n, None);
            }
        }
        self.lora_slots = n;
    }
}

fn require_autodiff(model: &CausalLm) -> Result<(), ModelError> {
    if model.device.is_autodiff() {
        Ok(())
    } else {
        Err(ModelError::Input(
            "training needs the model on an autodiff device".into(),
        ))
    }
}

/// The linear layer `module` of `model`, which must be `[out_f, in_f]` for what is attached to it
/// (`what` names it in the error).
fn linear_of_shape<'a>(
    model: &'a mut CausalLm,
    module: &str,
    in_f: usize,
    out_f: usize,
    what: &str,
) -> Result<&'a mut Linear, ModelError> {
    let linear = model.linear_mut(module).ok_or_else(|| {
        ModelError::Input(format!("`{module}` is not a linear layer of this model"))
    })?;
    if linear.in_features() != in_f || linear.out_features() != out_f {
        return Err(ModelError::Input(format!(
            "{what} of `{module}`: shaped for [{out_f}, {in_f}], but the layer is [{}, {}]",
            linear.out_features(),
            linear.in_features()
        )));
    }
    Ok(linear)
}

/// Installs `factors` as autodiff leaves in LoRA slot `slot` (which must exist) of the model,
/// replacing what the slot held in those modules. The model must live on an autodiff device.
pub fn attach(
    model: &mut CausalLm,
    slot: usize,
    factors: &[LoraFactors],
) -> Result<LoraLeaves, ModelError> {
    require_autodiff(model)?;
    if slot >= model.lora_slots {
        return Err(ModelError::Input(format!(
            "LoRA slot {slot} does not exist (the model has {})",
            model.lora_slots
        )));
    }
    let device = model.device.clone();
    let mut leaves = Vec::with_capacity(factors.len());
    for f in factors {
        let linear = linear_of_shape(
            model,
            &f.module,
            f.in_features,
            f.out_features,
            "LoRA factors",
        )?;
        if f.a.len() != f.in_features * f.rank || f.b.len() != f.rank * f.out_features {
            return Err(ModelError::Input(format!(
                "LoRA factors of `{}`: {} and {} values for rank {}",
                f.module,
                f.a.len(),
                f.b.len(),
                f.rank
            )));
        }
        let a = Tensor::<2>::from_data(
            TensorData::new(f.a.clone(), [f.in_features, f.rank]),
            &device,
        )
        .require_grad();
        let b = Tensor::<2>::from_data(
            TensorData::new(f.b.clone(), [f.rank, f.out_features]),
            &device,
        )
        .require_grad();
        linear.lora[slot] = Some(super::linear::LoraBranch {
            a: a.clone(),
            b: b.clone() * f.scale,
        });
        leaves.push((a, b));
    }
    Ok(LoraLeaves { leaves })
}

/// Each LoRA leaf's gradient as `(d a, d b)`, flat in the factors' layout.
pub type LeafGradients = Vec<(Vec<f32>, Vec<f32>)>;

/// The gradient of every leaf, `(d a, d b)` in the factors' layout; zeros for a leaf the loss
/// did not reach (e.g. a zero B makes A's gradient exactly zero).
pub fn gradients(leaves: &LoraLeaves, grads: &Gradients) -> Result<LeafGradients, ModelError> {
    leaves
        .leaves
        .iter()
        .map(|(a, b)| Ok((read_grad(a, grads)?, read_grad(b, grads)?)))
        .collect()
}

/// One linear layer's dense trainable delta (a full curve bend), `[in, out]` row-major: the
/// model's layout, i.e. the transpose of the Hugging Face weight `[out, in]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseFactor {
    /// Hugging Face module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    pub in_features: usize,
    pub out_features: usize,
    /// `[in, out]`, row-major.
    pub w: Vec<f32>,
}

impl DenseFactor {
    /// A zero delta for every linear layer of `model` whose module name ends in one of `targets`.
    pub fn zeros_for(model: &CausalLm, targets: &[String]) -> Vec<Self> {
        model
            .linear_module_names()
            .into_iter()
            .filter(|name| targets.iter().any(|t| name.ends_with(&format!(".{t}"))))
            .filter_map(|name| {
                let linear = model.linear(&name)?;
                let (i, o) = (linear.in_features(), linear.out_features());
                Some(Self {
                    module: name,
                    in_features: i,
                    out_features: o,
                    w: vec![0.0; i * o],
                })
            })
            .collect()
    }

    /// The delta in the Hugging Face layout `[out, in]`, row-major.
    pub fn hf(&self) -> Vec<f32> {
        transpose(&self.w, self.in_features, self.out_features)
    }
}

/// The autodiff leaves of one forward's dense deltas, in the order of their factors.
pub struct DenseLeaves {
    leaves: Vec<Tensor<2>>,
}

/// Installs `factors` as autodiff leaves at dense-delta index `index` of each named layer's
/// weight (θ = base + Σₖ cₖ·Δₖ; the leaf is Δ_index, its coefficient the path point's
/// `dense[index]`), replacing what that index held. The weight must already have `index`
/// deltas (the endpoint's, for a checkpoint endpoint). The model must live on an autodiff device.
pub fn attach_dense(
    model: &mut CausalLm,
    index: usize,
    factors: &[DenseFactor],
) -> Result<DenseLeaves, ModelError> {
    require_autodiff(model)?;
    let device = model.device.clone();
    let mut leaves = Vec::with_capacity(factors.len());
    for f in factors {
        if f.w.len() != f.in_features * f.out_features {
            return Err(ModelError::Input(format!(
                "dense delta of `{}`: {} values for [{}, {}]",
                f.module,
                f.w.len(),
                f.out_features,
                f.in_features
            )));
        }
        let linear = linear_of_shape(
            model,
            &f.module,
            f.in_features,
            f.out_features,
            "dense delta",
        )?;
        let deltas = &mut linear.weight.deltas;
        if deltas.len() < index {
            return Err(ModelError::Input(format!(
                "`{}` holds {} dense deltas; a delta at index {index} needs the ones before it",
                f.module,
                deltas.len()
            )));
        }
        let leaf = Tensor::<2>::from_data(
            TensorData::new(f.w.clone(), [f.in_features, f.out_features]),
            &device,
        )
        .require_grad();
        if deltas.len() == index {
            deltas.push(leaf.clone());
        } else {
            deltas[index] = leaf.clone();
        }
        leaves.push(leaf);
    }
    Ok(DenseLeaves { leaves })
}

/// The gradient of every dense leaf in the factors' layout; zeros for a leaf the loss did not
/// reach (a coefficient of 0 at this point).
pub fn dense_gradients(
    leaves: &DenseLeaves,
    grads: &Gradients,
) -> Result<Vec<Vec<f32>>, ModelError> {
    leaves.leaves.iter().map(|t| read_grad(t, grads)).collect()
}

fn read_grad(t: &Tensor<2>, grads: &Gradients) -> Result<Vec<f32>, ModelError> {
    let n: usize = t.dims().iter().product();
    match t.grad(grads) {
        Some(g) => g
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| ModelError::Device {
                device: format!("{:?}", t.device()),
                msg: format!("{e:?}"),
            }),
        None => Ok(vec![0.0; n]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_layout_round_trips() {
        let (r, i, o) = (3, 5, 4);
        let a: Vec<f32> = (0..r * i).map(|v| v as f32).collect();
        let b: Vec<f32> = (0..o * r).map(|v| -(v as f32)).collect();
        let f = LoraFactors::from_peft("m", &a, &b, r, i, o, 2.0).unwrap();
        // a[in=1, r=2] is PEFT's A[2, 1].
        assert_eq!(f.a[r + 2], a[2 * i + 1]);
        assert_eq!(f.a_peft(), a);
        assert_eq!(f.b_peft(), b);
        assert!(LoraFactors::from_peft("m", &a[1..], &b, r, i, o, 2.0).is_err());
    }
}

// TEMPORARY stub until the PEFT reader lands.
use std::{collections::BTreeMap, path::PathBuf};
use super::tensors::HostTensor;
pub struct LoraModule { pub a: HostTensor, pub b: HostTensor, pub scale: f64 }
pub struct LoraAdapter { pub origin: PathBuf, pub modules: BTreeMap<String, LoraModule> }

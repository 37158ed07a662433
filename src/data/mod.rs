//! Counterfactual reward-hack data: task families with programmatic scorers, a symmetrized
//! SFT generator, the metric suites, and the School of Reward Hacks (SoRH) CSV import.

pub mod bank;
pub mod capability;
pub mod csv;
pub mod error;
pub mod families;
pub mod generate;
pub mod item;
pub mod length;
pub mod manifest;
pub mod output;
pub mod rng;
pub mod scorer;
pub mod sorh;
pub mod suites;
pub mod symmetrize;
pub mod text;

pub use error::DataError;
pub use generate::{GenerateSpec, generate};
pub use length::LengthMeasure;
pub use manifest::Manifest;
pub use sorh::{SorhReport, SorhSpec, import_sorh};

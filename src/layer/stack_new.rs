//! Making a [`RecurrentStack`]: PyTorch's initialisation ([`RecurrentStack::new`]), from cells
//! ([`RecurrentStack::from_cells`]), and the per-kind adjustments.

use rand::Rng;

use super::stack::RecurrentStack;
use super::unit::{MergeMode, Unit};
use crate::alloc::{self, bytes_of};
use crate::cell::{CellInit, LstmCell, Nonlinearity, RnnCell};
use crate::config::StackConfig;
use crate::error::{Error, Result};
use crate::float::Float;

impl<C> RecurrentStack<C> {
    /// A network with PyTorch's default initialisation, cells drawn in PyTorch's registration
    /// order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if a size or `num_layers` is zero, `dropout` is not in `[0, 1]`,
    /// or a nonlinearity other than tanh is asked of an LSTM or GRU; [`Error::OutOfMemory`] if
    /// the network's parameters cannot be allocated (checked for the whole network before any is
    /// drawn).
    pub fn new<F: Float, R: Rng + ?Sized>(config: StackConfig, rng: &mut R) -> Result<Self>
    where
        C: CellInit<F>,
    {
        config.validate()?;
        let d = config.num_directions();
        // Everything the network will hold, checked at once before anything is drawn: a
        // `num_layers` of 10^9 is refused here instead of being built until memory runs out.
        let (i, h, l) = (
            config.input_size as u128,
            config.hidden_size as u128,
            config.num_layers,
        );
        let biases = if config.bias { 2 } else { 0 };
        // Bytes per column of one layer's weights (all directions), then its columns.
        let per_column = bytes_of::<F>(&[d, C::GATES, config.hidden_size]);
        // `h` is `p` wide (the projection's `weight_hr (P, H)` is counted as P/G more columns).
        let p = config.output_width() as u128;
        let hr = bytes_of::<F>(&[d, config.proj_size, config.hidden_size]);
        let first = per_column.saturating_mul(i + p + biases).saturating_add(hr);
        let inner = per_column
            .saturating_mul(d as u128 * p + p + biases)
            .saturating_add(hr);
        let structs = (std::mem::size_of::<Unit<C>>() + d * std::mem::size_of::<C>()) as u128;
        alloc::probe(
            first
                .saturating_add(inner.saturating_mul(l as u128 - 1))
                .saturating_add(structs.saturating_mul(l as u128)),
            &format!("a {l}-layer network with input_size = {i}, hidden_size = {h}"),
        )?;
        let mut layers = alloc::try_with_capacity(l, "the layers")?;
        for l in 0..config.num_layers {
            let input = if l == 0 {
                config.input_size
            } else {
                d * config.output_width()
            };
            let mut dirs = Vec::with_capacity(d);
            for _ in 0..d {
                dirs.push(C::init_cell(
                    input,
                    config.hidden_size,
                    config.proj_size,
                    config.bias,
                    config.nonlinearity,
                    rng,
                )?);
            }
            layers.push(Unit::new(dirs, MergeMode::Concat));
        }
        Ok(Self { config, layers })
    }

    /// A network from cells in PyTorch's order (`l0`, `l0_reverse`, `l1`, …).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an invalid `config` or a wrong number of cells;
    /// [`Error::Mismatch`] naming the first cell whose sizes, biases or nonlinearity do not fit
    /// `config`.
    pub fn from_cells<F: Float>(config: StackConfig, cells: Vec<C>) -> Result<Self>
    where
        C: CellInit<F>,
    {
        config.validate()?;
        let d = config.num_directions();
        if config.num_layers.checked_mul(d) != Some(cells.len()) {
            return Err(Error::InvalidConfig(format!(
                "{} layers × {d} directions need {} cells, got {}",
                config.num_layers,
                config.num_layers as u128 * d as u128,
                cells.len()
            )));
        }
        let mut layers: Vec<Vec<C>> = Vec::with_capacity(config.num_layers);
        for (k, cell) in cells.into_iter().enumerate() {
            let (l, dir) = (k / d, k % d);
            let input = if l == 0 {
                config.input_size
            } else {
                d * config.output_width()
            };
            let name = format!("l{l}{}", if dir == 1 { "_reverse" } else { "" });
            let got = (cell.input_size(), cell.hidden_size());
            if got != (input, config.hidden_size) {
                return Err(Error::Mismatch(format!(
                    "cell {name} has (input_size, hidden_size) = {got:?}, expected {:?}",
                    (input, config.hidden_size)
                )));
            }
            if cell.output_size() != config.output_width() {
                return Err(Error::Mismatch(format!(
                    "cell {name} has an output of {} features, the config says {} (proj_size {})",
                    cell.output_size(),
                    config.output_width(),
                    config.proj_size
                )));
            }
            if cell.cell_has_bias() != config.bias {
                return Err(Error::Mismatch(format!(
                    "cell {name} has bias = {}, the config says {}",
                    cell.cell_has_bias(),
                    config.bias
                )));
            }
            if cell.cell_nonlinearity() != config.nonlinearity {
                return Err(Error::Mismatch(format!(
                    "cell {name} has nonlinearity {:?}, the config says {:?}",
                    cell.cell_nonlinearity(),
                    config.nonlinearity
                )));
            }
            if dir == 0 {
                layers.push(Vec::with_capacity(d));
            }
            layers[l].push(cell);
        }
        let layers = layers
            .into_iter()
            .map(|cells| Unit::new(cells, MergeMode::Concat))
            .collect();
        Ok(Self { config, layers })
    }
}

impl<F: Float> RecurrentStack<LstmCell<F>> {
    /// Sets the forget-gate bias of every layer and direction ([`LstmCell::with_forget_bias`]).
    pub fn with_forget_bias(self, value: F) -> Self {
        let layers = self
            .layers
            .into_iter()
            .map(|unit| unit.map_cells(|c| c.with_forget_bias(value)))
            .collect();
        Self {
            config: self.config,
            layers,
        }
    }
}

impl<F: Float> RecurrentStack<RnnCell<F>> {
    /// The same weights with another nonlinearity (a weight file cannot record it).
    pub fn with_nonlinearity(self, nonlinearity: Nonlinearity) -> Self {
        let config = self.config.with_nonlinearity(nonlinearity);
        let layers = self
            .layers
            .into_iter()
            .map(|unit| {
                unit.map_cells(|c| {
                    RnnCell::from_weights(c.into_weights(), nonlinearity).expect("valid weights")
                })
            })
            .collect();
        Self { config, layers }
    }
}

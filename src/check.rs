//! Checks of what users hand to layers, shared by every layer type.

use ndarray::ArrayView3;

use crate::cell::State;
use crate::error::{shape_err, Error, Result};
use crate::float::Float;

/// `x` must be `(T, B, input_size)` with `T, B ≥ 1`; returns `(T, B)`.
pub(crate) fn input<F>(
    x: &ArrayView3<'_, F>,
    input_size: usize,
    layout: &str,
) -> Result<(usize, usize)> {
    let (steps, batch, features) = x.dim();
    if features != input_size {
        return Err(shape_err(
            "input",
            format!(
                "({layout}, {input_size}): {features} features given, the layer expects {input_size}"
            ),
            x.shape(),
        ));
    }
    if steps == 0 || batch == 0 {
        return Err(shape_err(
            "input",
            format!("({layout}, {input_size}) with T ≥ 1 and B ≥ 1"),
            x.shape(),
        ));
    }
    Ok((steps, batch))
}

/// One length per sequence, each in `1..=steps`.
pub(crate) fn lengths(lengths: Option<&[usize]>, steps: usize, batch: usize) -> Result<()> {
    let Some(lengths) = lengths else {
        return Ok(());
    };
    if lengths.len() != batch {
        return Err(Error::InvalidConfig(format!(
            "lengths has {} entries, the batch has {batch} sequences",
            lengths.len()
        )));
    }
    for (b, &l) in lengths.iter().enumerate() {
        if l == 0 {
            return Err(Error::InvalidConfig(format!(
                "lengths[{b}] = 0: every sequence needs at least one step (as PyTorch's \
                 pack_padded_sequence requires)"
            )));
        }
        if l > steps {
            return Err(Error::InvalidConfig(format!(
                "lengths[{b}] = {l} exceeds the {steps} time steps of the input"
            )));
        }
    }
    Ok(())
}

/// Every part of `state` must be `(batch, hidden)`.
pub(crate) fn state<F: Float, S: State<F>>(
    state: &S,
    batch: usize,
    (hidden, output): (usize, usize),
    what: &str,
) -> Result<()> {
    for (part, a) in state.parts() {
        let (width, name) = part_width(part, hidden, output);
        if a.dim() != (batch, width) {
            return Err(shape_err(
                format!("{what}.{part}"),
                format!("({batch}, {width}) = (batch, {name})"),
                a.shape(),
            ));
        }
    }
    Ok(())
}

/// The width a state part must have and what it is: `h` is `output` wide (`proj_size` for an
/// LSTM with a projection), the others `hidden` wide.
fn part_width(part: &str, hidden: usize, output: usize) -> (usize, &'static str) {
    if part == "h" && output != hidden {
        (output, "proj_size")
    } else {
        (hidden, "hidden_size")
    }
}

/// Every part of stacked states must be `(n, batch, hidden)`.
pub(crate) fn stacked<F: Float, S: State<F>>(
    stacked: &S::Stacked,
    n: usize,
    batch: usize,
    (hidden, output): (usize, usize),
    what: &str,
) -> Result<()> {
    for (part, a) in S::stacked_parts(stacked) {
        let (width, name) = part_width(part, hidden, output);
        if a.dim() != (n, batch, width) {
            return Err(shape_err(
                format!("{what}.{part}"),
                format!("({n}, {batch}, {width}) = (num_layers · num_directions, batch, {name})"),
                a.shape(),
            ));
        }
    }
    Ok(())
}

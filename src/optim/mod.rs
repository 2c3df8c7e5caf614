//! Optimizers: a per-array update rule plus one driver that walks any [`Params`].
//!
//! An [`UpdateRule`] updates one parameter array from its gradient and its own state (a *slot*:
//! momentum buffer, moment estimates). The [`Optimizer`] driver keeps one slot per array of a
//! model and applies the rule to every `(parameter, gradient)` pair that [`Params`] lists, so a rule
//! never knows what a cell or layer is.
//!
//! Rules follow `torch.optim`'s update formulas and defaults exactly (its single-tensor,
//! `foreach=False` code path): [`Sgd`] (momentum, dampening, Nesterov, weight decay), [`Adam`]
//! (weight decay, AMSGrad), [`AdamW`] (decoupled weight decay), [`RmsProp`] (momentum, centered)
//! and [`Adagrad`] (learning-rate decay, initial accumulator). Each is built from a config
//! (`AdamConfig::new(lr).with_betas(..).build()`) that checks every setting once.
//!
//! * [`clip_grad_norm`] is `torch.nn.utils.clip_grad_norm_`, [`clip_grad_value`] is
//!   `torch.nn.utils.clip_grad_value_`.
//! * [`schedule`] has learning-rate schedules (`StepLR`, `ExponentialLR`, `CosineAnnealingLR`,
//!   `LinearLR`, `ReduceLROnPlateau`, and `SequentialLR` to chain them, e.g. warm-up then
//!   cosine), applied with [`Optimizer::apply_schedule`].
//! * [`Optimizer::state`] / [`Optimizer::load_state`] save and restore everything the optimizer
//!   keeps, so a resumed run continues bit for bit.
//!
//! # Examples
//!
//! ```
//! use ndarray::Array3;
//! use rand::SeedableRng;
//! use recurrent::optim::AdamConfig;
//! use recurrent::{LstmCell, Params, Recurrent};
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut lstm = Recurrent::new(LstmCell::<f32>::new(2, 4, &mut rng)?);
//! let mut opt = AdamConfig::new(1e-2).build()?;
//! let x = Array3::<f32>::ones((3, 1, 2));
//! let before = lstm.clone();
//! let (out, _, tape) = lstm.forward(x.view(), None, None)?;
//! let mut grads = lstm.zeros_like();
//! lstm.backward(&tape, Array3::ones(out.dim()).view(), None, &mut grads)?;
//! recurrent::optim::clip_grad_norm(&mut grads, 1.0)?;
//! opt.step(&mut lstm, &grads)?;
//! assert_ne!(lstm, before);
//! # Ok::<(), recurrent::Error>(())
//! ```

/// Writes the `with_*` setters of a config: each entry `/// docs` `with_x(a: A, b: B);` becomes
/// `pub fn with_x(mut self, a: A, b: B) -> Self`, which sets the fields `a` and `b` and returns
/// the config.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($($field:ident: $ty:ty),+);)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $($field: $ty),+) -> Self {
                $(self.$field = $field;)+
                self
            }
        )*
    };
}

mod adagrad;
mod adam;
mod adamw;
mod clip;
mod rmsprop;
pub mod schedule;
mod sgd;
mod state;

pub use adagrad::{Adagrad, AdagradConfig, AdagradSlot};
pub use adam::{Adam, AdamConfig, AdamSlot};
pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use rmsprop::{RmsProp, RmsPropConfig, RmsPropSlot};
pub use schedule::{
    CosineAnnealingLr, ExponentialLr, LinearWarmup, LrSchedule, PlateauMode, ReduceLrOnPlateau,
    ReduceLrOnPlateauConfig, SequentialLr, StepLr, ThresholdMode, MAX_STEPPED_EPOCHS,
};
pub use sgd::{Sgd, SgdConfig, SgdSlot};
pub use state::{OptimizerState, SlotState};

use std::fmt::Debug;

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::params::{check_order, check_same_layout, Params};

/// How one parameter array is updated from its gradient.
///
/// Implement this to add an optimizer; [`Optimizer`] does the bookkeeping.
pub trait UpdateRule<F: Float> {
    /// Per-array state (momentum buffer, moment estimates, step count).
    type Slot: Clone + Debug;

    /// A short name identifying the rule in saved state (`"sgd"`, `"adam"`, ...).
    fn name(&self) -> &'static str;

    /// A fresh slot for a parameter array, before its first update.
    fn init_slot(&self, param: ArrayViewD<'_, F>) -> Self::Slot;

    /// Updates `param` in place from `grad` (same shape) and the array's `slot`.
    fn update(&self, slot: &mut Self::Slot, param: ArrayViewMutD<'_, F>, grad: ArrayViewD<'_, F>);

    /// The current learning rate.
    fn learning_rate(&self) -> F;

    /// Replaces the learning rate (already validated by the caller).
    fn set_learning_rate(&mut self, lr: F);

    /// The slot as named arrays and scalars (names without `.`, as `torch.optim`'s state keys),
    /// for [`Optimizer::state`].
    fn export_slot(&self, slot: &Self::Slot) -> SlotState<F>;

    /// Rebuilds the slot of `param` from saved state, **taking** every entry it uses out of
    /// `state` (entries left over make [`Optimizer::load_state`] fail).
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if an entry this rule needs is missing or not shaped like `param`.
    fn import_slot(&self, param: ArrayViewD<'_, F>, state: &mut SlotState<F>)
        -> Result<Self::Slot>;
}

/// Applies an [`UpdateRule`] to every array of a model, keeping one slot per array.
///
/// The first call to [`Optimizer::step`] fixes the layout (number, names and shapes of arrays);
/// later calls must pass a model of the same layout.
#[derive(Debug, Clone)]
pub struct Optimizer<F: Float, R: UpdateRule<F>> {
    rule: R,
    slots: Vec<R::Slot>,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    steps: u64,
    /// Refuse non-finite gradients (see [`Optimizer::set_check_finite`]).
    check_finite: bool,
    /// Whether the model's `Params` order was checked (at the first step).
    order_checked: bool,
}

impl<F: Float, R: UpdateRule<F>> Optimizer<F, R> {
    /// An optimizer applying `rule`; slots are created on the first step.
    pub fn new(rule: R) -> Self {
        Self {
            rule,
            slots: Vec::new(),
            names: Vec::new(),
            shapes: Vec::new(),
            steps: 0,
            check_finite: true,
            order_checked: false,
        }
    }

    /// The update rule.
    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// The per-array slots, in [`Params`] order (empty before the first step).
    pub fn slots(&self) -> &[R::Slot] {
        &self.slots
    }

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> F {
        self.rule.learning_rate()
    }

    /// Sets the learning rate (for schedules).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `lr` is negative or not finite.
    pub fn set_learning_rate(&mut self, lr: F) -> Result<()> {
        check_non_negative("lr", lr)?;
        self.rule.set_learning_rate(lr);
        Ok(())
    }

    /// Sets the learning rate to `schedule`'s current value ([`LrSchedule::lr`]).
    ///
    /// Call it once before the first step (schedules such as [`LinearWarmup`] do not start at the
    /// base rate), and again after each [`LrSchedule::step`]: PyTorch's schedulers write the rate
    /// into the optimizer at construction and at every `scheduler.step()`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the schedule's rate is negative or not finite (a schedule
    /// built with valid settings never gives one).
    ///
    /// # Examples
    ///
    /// ```
    /// use recurrent::optim::{LrSchedule, SgdConfig, StepLr};
    ///
    /// let mut opt = SgdConfig::<f32>::new(0.1).build()?;
    /// let mut sched = StepLr::new(0.1, 2, 0.5)?;
    /// let mut rates = vec![];
    /// for _epoch in 0..5 {
    ///     opt.apply_schedule(&sched)?;
    ///     rates.push(opt.learning_rate());
    ///     // ... train one epoch with `opt` ...
    ///     sched.step();
    /// }
    /// assert_eq!(rates, [0.1, 0.1, 0.05, 0.05, 0.025]);
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn apply_schedule<S: LrSchedule + ?Sized>(&mut self, schedule: &S) -> Result<()> {
        self.set_learning_rate(F::from_f64(schedule.lr()))
    }

    /// One optimisation step: updates every array of `params` from the matching array of `grads`.
    ///
    /// With the finiteness check on (the default, see [`Optimizer::set_check_finite`]) a step is
    /// all or nothing: each array's new values and new slot are checked as they are computed, and
    /// if one is refused every array and slot already updated is put back as it was. To that end
    /// the step keeps a copy of the parameters and slots it updates until it has checked them all.
    ///
    /// # Errors
    ///
    /// - [`Error::Mismatch`] if `grads` is not shaped like `params`, or `params` does not have
    ///   the layout of the model this optimizer has been stepping, or its [`Params`]
    ///   implementation lists a name twice or its arrays in different orders;
    /// - [`Error::InvalidConfig`] if the optimizer has already taken [`MAX_STEPS`] steps (the
    ///   most a checkpoint records exactly);
    /// - with the check on, [`Error::NonFinite`] if a gradient holds NaN or ±∞, or if the update
    ///   would write NaN or ±∞ into a weight or into the optimizer's state (e.g. from a huge
    ///   learning rate or a huge loaded moment estimate, all finite); [`Error::Mismatch`] if it
    ///   would leave a slot that [`Optimizer::load_state`] refuses (an array's `step` past
    ///   [`MAX_STEPS`]).
    ///
    /// Nothing is updated then: neither the weights nor the optimizer.
    pub fn step<P: Params<F>>(&mut self, params: &mut P, grads: &P) -> Result<()> {
        if self.steps >= MAX_STEPS {
            return Err(Error::InvalidConfig(format!(
                "the optimizer has taken {} steps, the most a checkpoint records exactly \
                 (MAX_STEPS = 2^53 - 1); no weight was updated",
                self.steps
            )));
        }
        let g = grads.named_arrays();
        if self.check_finite {
            for (name, a) in &g {
                if let Some((i, v)) = a.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(Error::NonFinite(format!(
                        "gradient `{name}` holds {v} at flat index {i}; no weight was updated \
                         (Optimizer::set_check_finite(false) steps anyway, as PyTorch does)"
                    )));
                }
            }
        }
        if !self.order_checked {
            // Once per optimizer: the slots follow `named_arrays`, the update `arrays_mut`.
            check_order(params)?;
            self.order_checked = true;
        }
        let fresh = self.slots.is_empty();
        {
            let p = params.named_arrays();
            check_same_layout(&p, &g)?;
            if fresh {
                self.names = p.iter().map(|(n, _)| n.clone()).collect();
                self.shapes = p.iter().map(|(_, a)| a.shape().to_vec()).collect();
                self.slots = p
                    .iter()
                    .map(|(_, a)| self.rule.init_slot(a.view()))
                    .collect();
            } else {
                self.check_layout(&p)?;
            }
        }
        if !self.check_finite {
            for ((param, (_, grad)), slot) in
                params.arrays_mut().into_iter().zip(g).zip(&mut self.slots)
            {
                self.rule.update(slot, param, grad);
            }
            self.steps += 1;
            return Ok(());
        }
        // Each array's old values and slot, kept until every update has been checked.
        let mut before: Vec<(ArrayD<F>, R::Slot)> = Vec::new();
        let mut refused = None;
        for ((mut param, (name, grad)), slot) in
            params.arrays_mut().into_iter().zip(g).zip(&mut self.slots)
        {
            before.push((param.to_owned(), slot.clone()));
            self.rule.update(slot, param.view_mut(), grad);
            if let Err(e) = check_update(&self.rule, &name, param.view(), slot) {
                refused = Some(e);
                break;
            }
        }
        if let Some(e) = refused {
            for ((mut param, slot), (old, old_slot)) in params
                .arrays_mut()
                .into_iter()
                .zip(&mut self.slots)
                .zip(before)
            {
                param.assign(&old);
                *slot = old_slot;
            }
            if fresh {
                self.slots.clear();
                self.names.clear();
                self.shapes.clear();
            }
            return Err(e);
        }
        self.steps += 1;
        Ok(())
    }

    /// Whether [`Optimizer::step`] refuses gradients that hold NaN or ±∞ and updates that would
    /// write NaN or ±∞ (or a slot [`Optimizer::load_state`] refuses), updating nothing then
    /// (default: `true`). With `false` it steps anyway, as `torch.optim` does, without keeping a
    /// copy to restore: the weights it touches may become non-finite, and a checkpoint saved
    /// after such a step may be refused when loaded. The [`MAX_STEPS`] bound holds either way.
    pub fn set_check_finite(&mut self, check: bool) {
        self.check_finite = check;
    }

    fn check_layout(&self, p: &[(String, ArrayViewD<'_, F>)]) -> Result<()> {
        if p.len() != self.shapes.len() {
            return Err(Error::Mismatch(format!(
                "the optimizer holds state for {} arrays, the model has {}",
                self.shapes.len(),
                p.len()
            )));
        }
        for ((name, a), shape) in p.iter().zip(&self.shapes) {
            if a.shape() != shape.as_slice() {
                return Err(Error::Mismatch(format!(
                    "array `{name}` has shape {:?}, the optimizer's state for it has {shape:?}",
                    a.shape()
                )));
            }
        }
        Ok(())
    }

    /// A copy of everything the optimizer keeps between steps: the step count, the learning rate
    /// and every array's slot (named after the array, in [`Params`] order).
    ///
    /// Restore it with [`Optimizer::load_state`] into an optimizer built from the same config;
    /// the run then continues bit for bit as if it had not been interrupted.
    ///
    /// # Examples
    ///
    /// ```
    /// use ndarray::array;
    /// use recurrent::{optim::AdamConfig, Linear};
    ///
    /// let g = Linear::from_weights(array![[0.5, -1.0]], None)?;
    /// let mut a = Linear::from_weights(array![[1.0, 2.0]], None)?;
    /// let mut opt = AdamConfig::new(1e-2).build()?;
    /// opt.step(&mut a, &g)?;
    ///
    /// // Save, then resume in a fresh optimizer on a copy of the model.
    /// let state = opt.state();
    /// let mut b = a.clone();
    /// let mut resumed = AdamConfig::new(1e-2).build()?;
    /// resumed.load_state(&b, &state)?;
    ///
    /// opt.step(&mut a, &g)?;
    /// resumed.step(&mut b, &g)?;
    /// assert_eq!(a, b);
    /// assert_eq!(resumed.steps(), 2);
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn state(&self) -> OptimizerState<F> {
        OptimizerState {
            optimizer: self.rule.name().to_string(),
            steps: self.steps,
            learning_rate: Float::as_f64(self.rule.learning_rate()),
            slots: self
                .names
                .iter()
                .zip(&self.slots)
                .map(|(n, s)| (n.clone(), self.rule.export_slot(s)))
                .collect(),
        }
    }

    /// Restores a state saved by [`Optimizer::state`] for the model `params` (whose arrays must
    /// have the names and shapes the state was saved with). The learning rate is restored too.
    ///
    /// A state saved before the first step resets the optimizer to a fresh one.
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if the state was written by another rule, lists other array names or
    /// another number of arrays than `params`, has an array of the wrong shape, lacks an entry
    /// this rule needs (e.g. AMSGrad's `max_exp_avg_sq`) or has one it does not use;
    /// [`Error::InvalidConfig`] if the saved learning rate is negative or not finite;
    /// [`Error::NonFinite`] if a saved array holds a NaN or an infinity, [`Error::Mismatch`] if a
    /// saved sum or average of squares (`exp_avg_sq`, `square_avg`, `sum`) holds a negative
    /// value. The optimizer is unchanged then.
    pub fn load_state<P: Params<F>>(
        &mut self,
        params: &P,
        state: &OptimizerState<F>,
    ) -> Result<()> {
        if state.optimizer != self.rule.name() {
            return Err(Error::Mismatch(format!(
                "the saved state is for optimizer `{}`, this one is `{}`",
                state.optimizer,
                self.rule.name()
            )));
        }
        let lr = F::from_f64(state.learning_rate);
        check_non_negative("saved learning_rate", lr)?;
        if state.steps > MAX_STEPS {
            return Err(Error::Mismatch(format!(
                "the saved state counts {} steps, more than an optimizer takes (MAX_STEPS = \
                 2^53 - 1 = {MAX_STEPS})",
                state.steps
            )));
        }
        let p = params.named_arrays();
        if state.slots.is_empty() {
            // Before the first step, or a model without arrays (which steps with no slots).
            if state.steps != 0 && !p.is_empty() {
                return Err(Error::Mismatch(format!(
                    "the saved state counts {} steps but holds no per-array state, and the model \
                     has {} arrays",
                    state.steps,
                    p.len()
                )));
            }
            self.slots.clear();
            self.names.clear();
            self.shapes.clear();
            self.steps = state.steps;
            self.rule.set_learning_rate(lr);
            return Ok(());
        }
        if p.len() != state.slots.len() {
            return Err(Error::Mismatch(format!(
                "the saved state holds {} arrays, the model has {}",
                state.slots.len(),
                p.len()
            )));
        }
        let mut slots = Vec::with_capacity(p.len());
        for ((name, a), (saved_name, saved)) in p.iter().zip(&state.slots) {
            if name != saved_name {
                return Err(Error::Mismatch(format!(
                    "the saved state is for array `{saved_name}`, the model's array in that place \
                     is `{name}`"
                )));
            }
            let mut saved = saved.clone();
            let slot = self
                .rule
                .import_slot(a.view(), &mut saved)
                .map_err(|e| match e {
                    Error::Mismatch(m) => Error::Mismatch(format!("array `{name}`: {m}")),
                    Error::NonFinite(m) => Error::NonFinite(format!("array `{name}`: {m}")),
                    e => e,
                })?;
            if !saved.is_empty() {
                let names = saved.names();
                // At most a few names: a crafted file may hold a great many.
                let more = match names.len() {
                    n if n > 8 => format!(" and {} more", n - 8),
                    _ => String::new(),
                };
                return Err(Error::Mismatch(format!(
                    "array `{name}`: the saved state has entries {:?}{more} that `{}` with these \
                     settings does not use",
                    &names[..names.len().min(8)],
                    self.rule.name()
                )));
            }
            slots.push(slot);
        }
        self.names = p.iter().map(|(n, _)| n.clone()).collect();
        self.shapes = p.iter().map(|(_, a)| a.shape().to_vec()).collect();
        self.slots = slots;
        self.steps = state.steps;
        self.rule.set_learning_rate(lr);
        Ok(())
    }
}

/// The most steps an optimizer takes, and the largest step count an array's slot holds:
/// 2⁵³ − 1, the largest count that a checkpoint stores exactly (step counts are saved as `f64`,
/// as PyTorch saves `step`). [`Optimizer::step`] refuses to go past it and
/// [`Optimizer::load_state`] refuses a state that claims more, so whatever a step reaches loads
/// back.
pub const MAX_STEPS: u64 = (1 << 53) - 1;

/// `Ok` if what one update left in `param` and `slot` is finite and can be saved and loaded
/// back: the slot goes through [`UpdateRule::export_slot`] and [`UpdateRule::import_slot`], the
/// checks of [`Optimizer::load_state`].
fn check_update<F: Float, R: UpdateRule<F>>(
    rule: &R,
    name: &str,
    param: ArrayViewD<'_, F>,
    slot: &R::Slot,
) -> Result<()> {
    if let Some((i, v)) = param.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "the step would make weight `{name}` {v} at flat index {i} (from finite gradients: \
             the learning rate or the optimizer's state is too large); no weight was updated"
        )));
    }
    let mut exported = rule.export_slot(slot);
    rule.import_slot(param, &mut exported)
        .map(drop)
        .map_err(|e| {
            let why = format!(
                "the step would leave the optimizer's state for `{name}` unloadable; no weight \
                 was updated"
            );
            match e {
                Error::NonFinite(m) => Error::NonFinite(format!("{why}: {m}")),
                Error::Mismatch(m) => Error::Mismatch(format!("{why}: {m}")),
                e => e,
            }
        })
}

/// `Err` unless `v` is finite and `>= 0`.
pub(crate) fn check_non_negative<F: Float>(name: &str, v: F) -> Result<()> {
    if v.is_finite() && v >= F::zero() {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "{name} must be finite and >= 0, got {v}"
        )))
    }
}

/// `Err` unless `eps` is finite and > 0: with `eps = 0` a zero gradient (and a zero running
/// average of squares) makes the step `0 / 0`, NaN in every weight. PyTorch accepts it.
pub(crate) fn check_positive_eps<F: Float>(eps: F, default: &str) -> Result<()> {
    check_non_negative("eps", eps)?;
    if eps > F::zero() {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "eps must be > 0: with eps = 0 a zero gradient makes the step 0 / 0 (NaN in every \
             weight); PyTorch's default is {default}"
        )))
    }
}

/// `Err` unless `0 <= v < 1`.
pub(crate) fn check_unit_interval<F: Float>(name: &str, v: F) -> Result<()> {
    if v >= F::zero() && v < F::one() {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "{name} must be in [0, 1), got {v}"
        )))
    }
}

/// `a + w·(b − a)`, evaluated as PyTorch's `lerp` does: from `b`'s end when `|w| >= 0.5`.
#[inline]
pub(crate) fn lerp<F: Float>(a: F, b: F, w: F) -> F {
    if w.abs() < F::from_f64(0.5) {
        a + w * (b - a)
    } else {
        b - (b - a) * (F::one() - w)
    }
}

//! The one CPU-feature dispatch: which instruction set the crate's kernels use (public through
//! [`runtime`](crate::runtime)).
//!
//! Every kernel that has builds for several instruction sets (the `f32` GEMM, the sequence
//! engine's time loop) asks [`current`] and nothing else. The choice is, in order of precedence:
//! the last [`set_isa`], the `RECURRENT_ISA` environment variable (read once, at the first
//! product), the best instruction set this CPU has.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};

/// An instruction-set path of the crate's kernels.
///
/// | path | `f32` products | time-loop kernels | needs |
/// |---|---|---|---|
/// | [`Isa::Avx512`] | the crate's GEMM, 6×64 tiles | 16-wide | x86-64 with AVX-512F, AVX2, FMA |
/// | [`Isa::Avx2`] | the crate's GEMM, 6×16 tiles | 8-wide | x86-64 with AVX2 and FMA |
/// | [`Isa::Portable`] | `matrixmultiply` | as the compiler vectorises for the target | any CPU |
///
/// `f64` products always use `matrixmultiply` (which picks its own kernels for the CPU, also on
/// the portable path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Isa {
    /// No CPU-specific code of the crate's own.
    Portable,
    /// x86-64 AVX2 with FMA (most x86-64 CPUs since 2013–2015).
    Avx2,
    /// x86-64 AVX-512F (with AVX2 and FMA).
    Avx512,
}

impl Isa {
    /// Every path, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The name `RECURRENT_ISA` takes: `"portable"`, `"avx2"` or `"avx512"`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The path named `name` (as [`Isa::name`] gives it, any case), or `None`.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name.trim()))
    }

    /// `true` if this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::is_x86_feature_detected!("avx512f") && Isa::Avx2.is_supported(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The best path this CPU supports.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.is_supported())
            .unwrap_or(Isa::Portable)
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<Isa> {
        Isa::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The chosen path, as [`Isa::code`]; 0 until the first use.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// The instruction-set path the crate's kernels use now.
///
/// Unless [`set_isa`] chose one, this is the path named by the `RECURRENT_ISA` environment
/// variable (`portable`, `avx2`, `avx512`; read once, at the first call) if the CPU supports it,
/// else the best path the CPU supports. A value that names no path, or a path this CPU lacks, is
/// reported once on standard error and the best supported path below it is used.
///
/// # Examples
///
/// ```
/// use recurrent::runtime::{isa, Isa};
/// assert!(isa().is_supported());
/// assert!(isa() <= Isa::best());
/// ```
pub fn isa() -> Isa {
    current()
}

/// Makes the crate's kernels use `isa` from now on (for every thread), e.g. to test or benchmark
/// the AVX2 path on an AVX-512 machine. Results of the paths agree to rounding.
///
/// # Errors
///
/// [`Error::InvalidConfig`] if this CPU cannot run `isa` (the path in use is unchanged).
///
/// # Examples
///
/// ```
/// use recurrent::runtime::{isa, set_isa, Isa};
/// let before = isa();
/// set_isa(Isa::Portable)?; // every CPU has it
/// assert_eq!(isa(), Isa::Portable);
/// set_isa(before)?;
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn set_isa(isa: Isa) -> Result<()> {
    if !isa.is_supported() {
        return Err(Error::InvalidConfig(format!(
            "this CPU cannot run the {isa} path; it supports {}",
            supported_names()
        )));
    }
    CHOSEN.store(isa.code(), Ordering::Relaxed);
    Ok(())
}

fn supported_names() -> String {
    Isa::ALL
        .into_iter()
        .filter(|i| i.is_supported())
        .map(Isa::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The path in use (see [`isa`]); what every dispatching kernel calls.
#[inline]
pub(crate) fn current() -> Isa {
    match Isa::from_code(CHOSEN.load(Ordering::Relaxed)) {
        Some(isa) => isa,
        None => {
            let isa = from_env();
            // A concurrent `set_isa` wins over the environment.
            let _ = CHOSEN.compare_exchange(0, isa.code(), Ordering::Relaxed, Ordering::Relaxed);
            Isa::from_code(CHOSEN.load(Ordering::Relaxed)).unwrap_or(isa)
        }
    }
}

/// The path `RECURRENT_ISA` asks for, limited to what the CPU supports.
fn from_env() -> Isa {
    let best = Isa::best();
    let Some(value) = std::env::var_os("RECURRENT_ISA") else {
        return best;
    };
    let value = value.to_string_lossy();
    if value.trim().is_empty() {
        return best;
    }
    match Isa::from_name(&value) {
        Some(isa) if isa.is_supported() => isa,
        Some(isa) => {
            eprintln!(
                "recurrent: RECURRENT_ISA={value}: this CPU cannot run the {isa} path; using {best}"
            );
            best
        }
        None => {
            eprintln!(
                "recurrent: RECURRENT_ISA={value} names no path (portable, avx2, avx512); using {best}"
            );
            best
        }
    }
}

/// A piece of work that [`dispatch`] runs under the target features of the chosen level
/// (`pulp`'s `WithSimd`): the hot loops are written once, as a `Job`, and compiled once per
/// level, each copy with that level's vector instructions.
///
/// `run` must be `#[inline(always)]` (with what it calls in its loops), so that its body is
/// compiled inside the level's `#[target_feature]` function rather than called from it.
pub(crate) trait Job {
    /// What the job returns.
    type Output;

    /// The work, on a CPU that has `level`'s instructions (`level` proves it).
    fn run<L: Level>(self, level: L) -> Self::Output;
}

/// A proof that this CPU runs an instruction-set level: a value of a level type exists only
/// after feature detection found the level's features ([`Portable`] always exists).
pub(crate) trait Level: Copy + Send + Sync + 'static {}

/// The portable level: no CPU-specific instructions of the crate's own.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable;

impl Level for Portable {}

/// Writes a level's proof type: `detect` (the one way to make a value), [`Level`], and
/// `vectorize`, which runs a [`Job`] in a function compiled with the level's target features.
macro_rules! level {
    ($(#[$doc:meta])* $name:ident, $features:literal, [$($feature:tt),+]) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[derive(Clone, Copy, Debug)]
        pub(crate) struct $name(());

        #[cfg(target_arch = "x86_64")]
        impl $name {
            /// `Some` if this CPU has the level's features.
            #[inline]
            pub(crate) fn detect() -> Option<Self> {
                ($(std::is_x86_feature_detected!($feature))&&+).then_some($name(()))
            }

            /// Runs `job` compiled with the level's target features.
            #[inline]
            pub(crate) fn vectorize<J: Job>(self, job: J) -> J::Output {
                #[target_feature(enable = $features)]
                fn with_features<J: Job>(level: $name, job: J) -> J::Output {
                    job.run(level)
                }
                // SAFETY: `with_features` needs a CPU with the level's features, and `self`
                // exists only if `detect` found every one of them on this CPU.
                unsafe { with_features(self, job) }
            }
        }

        #[cfg(target_arch = "x86_64")]
        impl Level for $name {}
    };
}

level!(
    /// Proof that the CPU has AVX2 and FMA.
    Avx2, "avx2,fma", ["avx2", "fma"]
);
level!(
    /// Proof that the CPU has AVX-512F, AVX2 and FMA.
    Avx512, "avx512f,avx2,fma", ["avx512f", "avx2", "fma"]
);

/// The path [`current`] chose, with the proof of its level.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Detected {
    /// No CPU-specific code.
    Portable,
    /// AVX2 with FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    /// AVX-512F (with AVX2 and FMA).
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
}

/// The path in use ([`current`]) with its proof.
#[inline]
pub(crate) fn detected() -> Detected {
    match current() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Avx512::detect().map_or(Detected::Portable, Detected::Avx512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Avx2::detect().map_or(Detected::Portable, Detected::Avx2),
        _ => Detected::Portable,
    }
}

/// Runs `job` on the path in use, compiled for its level: the crate's one CPU-feature dispatch
/// (the sequence engine, the single step and the stream run through it).
#[inline]
pub(crate) fn dispatch<J: Job>(job: J) -> J::Output {
    match detected() {
        #[cfg(target_arch = "x86_64")]
        Detected::Avx512(level) => level.vectorize(job),
        #[cfg(target_arch = "x86_64")]
        Detected::Avx2(level) => level.vectorize(job),
        Detected::Portable => job.run(Portable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
            assert_eq!(Isa::from_code(isa.code()), Some(isa));
        }
        assert_eq!(Isa::from_name(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::from_name("sse"), None);
        assert_eq!(Isa::from_code(0), None);
        assert!(Isa::Portable.is_supported());
        assert!(Isa::best().is_supported());
    }

    /// The job runs at the level of the path in use, on every path this CPU has.
    #[test]
    fn dispatch_runs_the_job_at_the_chosen_level() {
        /// Returns the name of the level type it runs at.
        struct Which;
        impl Job for Which {
            type Output = &'static str;
            #[inline(always)]
            fn run<L: Level>(self, _level: L) -> &'static str {
                std::any::type_name::<L>().rsplit("::").next().unwrap_or("")
            }
        }
        let expected = match current() {
            Isa::Portable => "Portable",
            Isa::Avx2 => "Avx2",
            Isa::Avx512 => "Avx512",
        };
        assert_eq!(dispatch(Which), expected);
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(level) = Avx2::detect() {
                assert_eq!(level.vectorize(Which), "Avx2");
            }
            if let Some(level) = Avx512::detect() {
                assert_eq!(level.vectorize(Which), "Avx512");
            }
        }
        assert_eq!(Which.run(Portable), "Portable");
    }
}

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
}

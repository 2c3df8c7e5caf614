//! Debug and test builds only: the crate's own instances of its generic entry points for the
//! built-in cells in `f32` and `f64`.
//!
//! In unoptimised and `opt-level = 1` builds rustc shares generic instances between crates
//! (`-Z share-generics`, on by default there): a program, test or example that calls
//! `Lstm::<f32>::forward` links the instance compiled here instead of compiling the whole engine
//! again for itself. Release builds do not share generics, so this module is not compiled there.

use crate::cell::{GruCell, LayerNormLstmCell, LstmCell, RnnCell};
use crate::layer::{RecurrentStack, Stream};
use rand::rngs::StdRng;

macro_rules! entry_points {
    ($($cell:ident<$f:ty>),* $(,)?) => {
        [$(
            RecurrentStack::<$cell<$f>>::forward::<$f> as *const (),
            RecurrentStack::<$cell<$f>>::forward_train::<$f, StdRng> as *const (),
            RecurrentStack::<$cell<$f>>::infer::<$f> as *const (),
            RecurrentStack::<$cell<$f>>::run::<$f> as *const (),
            RecurrentStack::<$cell<$f>>::backward_impl::<$f> as *const (),
            RecurrentStack::<$cell<$f>>::new::<$f, StdRng> as *const (),
            RecurrentStack::<$cell<$f>>::stream::<$f> as *const (),
            Stream::<'static, $f, $cell<$f>>::step as *const (),
        )*]
    };
}

/// The addresses of the instances above; calling it does nothing useful, referencing them is
/// what makes rustc compile them into this crate.
#[doc(hidden)]
pub fn entry_points() -> usize {
    let all = entry_points![
        RnnCell<f32>,
        LstmCell<f32>,
        GruCell<f32>,
        LayerNormLstmCell<f32>,
        RnnCell<f64>,
        LstmCell<f64>,
        GruCell<f64>,
        LayerNormLstmCell<f64>,
    ];
    all.len()
}

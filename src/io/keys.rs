//! PyTorch's `state_dict()` key scheme for recurrent layers, both ways: `weight_ih` of layer 2's
//! reverse direction is `weight_ih_l2_reverse`.
//!
//! Every place that names a recurrent parameter builds the name with [`param_key`] and every place
//! that reads one back parses it with [`parse_param_key`], so the scheme is written once.

/// The key of parameter `base` (`"weight_ih"`, `"bias_hh"`, …) of `layer`, in the forward or the
/// reverse direction: `param_key("weight_ih", 2, true) == "weight_ih_l2_reverse"`.
pub(crate) fn param_key(base: &str, layer: usize, reverse: bool) -> String {
    if reverse {
        format!("{base}_l{layer}_reverse")
    } else {
        format!("{base}_l{layer}")
    }
}

/// The inverse of [`param_key`]: `"weight_ih_l2_reverse"` → `("weight_ih", 2, true)`. `None` if
/// `key` does not end in `_l{digits}` or `_l{digits}_reverse` after a non-empty base.
pub(crate) fn parse_param_key(key: &str) -> Option<(&str, usize, bool)> {
    let (rest, reverse) = match key.strip_suffix("_reverse") {
        Some(r) => (r, true),
        None => (key, false),
    };
    let (base, digits) = rest.rsplit_once("_l")?;
    if base.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base, digits.parse().ok()?, reverse))
}

#[cfg(test)]
mod tests {
    use super::{param_key, parse_param_key};

    #[test]
    fn keys_follow_pytorch() {
        assert_eq!(param_key("weight_ih", 2, true), "weight_ih_l2_reverse");
        assert_eq!(param_key("bias_hh", 0, false), "bias_hh_l0");
        assert_eq!(param_key("weight_hh", 11, false), "weight_hh_l11");
    }

    #[test]
    fn parsing_inverts_building() {
        for base in ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "w"] {
            for layer in [0, 1, 9, 10, 123] {
                for reverse in [false, true] {
                    let key = param_key(base, layer, reverse);
                    assert_eq!(parse_param_key(&key), Some((base, layer, reverse)), "{key}");
                }
            }
        }
    }

    #[test]
    fn other_names_do_not_parse() {
        for key in [
            "weight",
            "bias",
            "weight_ih_l",
            "weight_ih_lx",
            "weight_ih_l1x",
            "weight_ih_l-1",
            "_l0",
            "weight_ih_l0_reversed",
            "weight_ih_l99999999999999999999999",
        ] {
            assert_eq!(parse_param_key(key), None, "{key}");
        }
    }
}

//! Command-line flags and progress lines shared by the examples (no dependencies).
//!
//! Flags are `--name VALUE` or `--name=VALUE`; switches are `--name` alone. `--help` prints the
//! usage and exits 0; an unknown flag, a missing or unparsable value, a repeated flag or a value
//! out of range prints the problem and the usage to stderr and exits with status 2.

use std::str::FromStr;
use std::time::Instant;

/// The arguments still to be read, with the program's name and usage text for messages.
pub struct Cli {
    prog: &'static str,
    usage: &'static str,
    args: Vec<String>,
}

impl Cli {
    /// Reads the process arguments; handles `--help` / `-h`.
    pub fn new(prog: &'static str, usage: &'static str) -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "--help" || a == "-h") {
            println!("{usage}");
            std::process::exit(0);
        }
        Self { prog, usage, args }
    }

    /// Prints `problem` and the usage to stderr and exits with status 2.
    pub fn fail(&self, problem: &str) -> ! {
        eprintln!("{}: {problem}\n\n{}", self.prog, self.usage);
        std::process::exit(2)
    }

    /// Removes `--flag VALUE` / `--flag=VALUE` and returns the raw value, if present.
    fn take_raw(&mut self, flag: &str) -> Option<String> {
        let prefix = format!("{flag}=");
        let mut found: Option<String> = None;
        let mut i = 0;
        while i < self.args.len() {
            let a = &self.args[i];
            let value = if a == flag {
                if i + 1 >= self.args.len() {
                    self.fail(&format!("{flag} needs a value"));
                }
                let v = self.args.remove(i + 1);
                self.args.remove(i);
                v
            } else if let Some(v) = a.strip_prefix(&prefix) {
                let v = v.to_string();
                self.args.remove(i);
                v
            } else {
                i += 1;
                continue;
            };
            if found.is_some() {
                self.fail(&format!("{flag} is given more than once"));
            }
            found = Some(value);
        }
        found
    }

    /// The value of `--flag`, parsed, if given.
    pub fn opt<T: FromStr>(&mut self, flag: &str) -> Option<T> {
        self.take_raw(flag).map(|v| {
            v.parse()
                .unwrap_or_else(|_| self.fail(&format!("bad value for {flag}: `{v}`")))
        })
    }

    /// The value of `--flag`, parsed, or `default`.
    pub fn get<T: FromStr>(&mut self, flag: &str, default: T) -> T {
        self.opt(flag).unwrap_or(default)
    }

    /// Like [`Cli::get`], failing unless the value is at least `min`.
    pub fn at_least<T: FromStr + PartialOrd + std::fmt::Display + Copy>(
        &mut self,
        flag: &str,
        default: T,
        min: T,
    ) -> T {
        let v = self.get(flag, default);
        if v < min {
            self.fail(&format!("{flag} must be at least {min}, got {v}"));
        }
        v
    }

    /// A positive, finite float (`--lr`, `--temperature`, ...).
    pub fn positive(&mut self, flag: &str, default: f64) -> f64 {
        let v: f64 = self.get(flag, default);
        if !(v.is_finite() && v > 0.0) {
            self.fail(&format!("{flag} must be a positive number, got {v}"));
        }
        v
    }

    /// A comma-separated list of values (`--ts 50,100,200`), if given.
    pub fn list<T: FromStr>(&mut self, flag: &str) -> Option<Vec<T>> {
        self.take_raw(flag).map(|v| {
            v.split(',')
                .map(|p| {
                    p.trim().parse().unwrap_or_else(|_| {
                        self.fail(&format!("bad value for {flag}: `{p}` in `{v}`"))
                    })
                })
                .collect()
        })
    }

    /// `true` if the switch `--flag` (no value) is present.
    pub fn switch(&mut self, flag: &str) -> bool {
        let n = self.args.len();
        self.args.retain(|a| a != flag);
        match n - self.args.len() {
            0 => false,
            1 => true,
            _ => self.fail(&format!("{flag} is given more than once")),
        }
    }

    /// Fails on anything left over (unknown flags, stray values).
    pub fn finish(self) {
        if let Some(a) = self.args.first() {
            if a.starts_with('-') {
                self.fail(&format!("unknown flag {a}"));
            }
            self.fail(&format!("unexpected argument `{a}`"));
        }
    }
}

/// Prints `step N  loss X  S steps/s  elapsed Es` lines about `reports` times over a run, each
/// with the mean loss since the previous line, and keeps every step's loss for plotting.
pub struct Progress {
    label: String,
    start: Instant,
    first_step: usize,
    total: usize,
    every: usize,
    window: (f64, usize),
    /// `(step, loss)` for every recorded step.
    pub history: Vec<(f64, f64)>,
    /// The mean loss of the first and the latest printed window.
    pub first_mean: Option<f64>,
    /// The mean loss of the latest printed window.
    pub last_mean: f64,
}

impl Progress {
    /// Progress over steps `first_step..=total` (`first_step` > 1 after a resume), with a line
    /// prefix `label` (may be empty).
    pub fn new(label: &str, first_step: usize, total: usize, reports: usize) -> Self {
        let span = total.saturating_sub(first_step) + 1;
        Self {
            label: label.to_string(),
            start: Instant::now(),
            first_step,
            total,
            every: (span / reports.max(1)).max(1),
            window: (0.0, 0),
            history: Vec::new(),
            first_mean: None,
            last_mean: f64::NAN,
        }
    }

    /// Seconds since [`Progress::new`].
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Records the loss of `step`; prints a line when one is due (returns its window mean).
    pub fn record(&mut self, step: usize, loss: f64) -> Option<f64> {
        self.history.push((step as f64, loss));
        self.window.0 += loss;
        self.window.1 += 1;
        let due = step == self.first_step
            || (step - self.first_step + 1).is_multiple_of(self.every)
            || step == self.total;
        if !due {
            return None;
        }
        let mean = self.window.0 / self.window.1 as f64;
        self.window = (0.0, 0);
        let elapsed = self.elapsed();
        let done = step + 1 - self.first_step;
        println!(
            "{}step {step:>5}  loss {mean:.5}  {:.1} steps/s  elapsed {elapsed:.1}s",
            self.label,
            done as f64 / elapsed.max(1e-9)
        );
        self.first_mean.get_or_insert(mean);
        self.last_mean = mean;
        Some(mean)
    }
}

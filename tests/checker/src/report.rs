//! Per-check result lines: `PASS name: detail`, `FAIL ...`, `SKIP ...`.

/// Collects check results and prints each as it comes.
#[derive(Default)]
pub struct Report {
    /// Number of failed checks.
    pub failed: usize,
    /// Number of passed checks.
    pub passed: usize,
}

impl Report {
    /// Records a check that passed.
    pub fn pass(&mut self, name: &str, detail: impl std::fmt::Display) {
        self.passed += 1;
        println!("PASS {name}: {detail}");
    }

    /// Records a check that failed.
    pub fn fail(&mut self, name: &str, detail: impl std::fmt::Display) {
        self.failed += 1;
        println!("FAIL {name}: {detail}");
    }

    /// Records a check that could not run here (loudly, never silently).
    pub fn skip(&mut self, name: &str, why: impl std::fmt::Display) {
        println!("SKIP {name}: {why}");
    }

    /// Passes when `got == want`, fails otherwise.
    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, got: T, want: T) {
        if got == want {
            self.pass(name, format!("{got:?}"));
        } else {
            self.fail(name, format!("expected {want:?}, got {got:?}"));
        }
    }
}

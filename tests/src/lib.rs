//! Integration tests: real microVM boots, the test host runner, and in-container checkers.

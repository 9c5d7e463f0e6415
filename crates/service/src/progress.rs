//! The progress bar the long-running subcommands draw.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `what`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{bar:40.cyan/blue} {pos}/{len} {prefix} {msg} [{elapsed_precise}]",
    )
    .expect("valid template");
    let bar = ProgressBar::new(len).with_style(style);
    bar.set_prefix(what.to_owned());
    bar
}

//! `vmrun list [--format table|json] [-q]`: the containers under `--root`,
//! as runc lists them.

use super::{CliError, GlobalOpts};
use crate::runtime::container::Container;
use crate::runtime::state::{PrintedState, StateRoot};

/// Output format of `list` and `ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum TableFormat {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON.
    Json,
}

/// Arguments of `vmrun list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// Print the ids only.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Lays out rows like Go's tabwriter as runc uses it (min width 12,
/// padding 3, the last column unpadded).
pub fn tabulate(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let widest = rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0);
            (widest + 3).max(12)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// Every recorded container's printed state.
pub fn states(root: &StateRoot) -> Result<Vec<PrintedState>, CliError> {
    let mut states = Vec::new();
    for id in root.ids()? {
        // A container deleted meanwhile is simply not listed.
        if let Ok(container) = Container::load(root, &id) {
            states.push(container.record().printed(container.status()));
        }
    }
    Ok(states)
}

/// Runs `vmrun list`.
pub fn run(global: &GlobalOpts, args: ListArgs) -> Result<i32, CliError> {
    let states = states(&StateRoot::new(&global.root))?;
    if args.quiet {
        for state in &states {
            println!("{}", state.id);
        }
        return Ok(0);
    }
    match args.format {
        TableFormat::Json => {
            // runc marshals an empty list as null.
            let text = if states.is_empty() {
                "null".to_string()
            } else {
                // runc's list names the owner (`state` leaves it empty).
                let listed: Vec<PrintedState> = states
                    .iter()
                    .cloned()
                    .map(|mut s| {
                        if s.owner.is_empty() {
                            s.owner = "root".into();
                        }
                        s
                    })
                    .collect();
                serde_json::to_string(&listed)
                    .map_err(|e| CliError::Write("(stdout)".into(), e.into()))?
            };
            println!("{text}");
        }
        TableFormat::Table => {
            let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
                .map(String::from)
                .to_vec()];
            for s in &states {
                rows.push(vec![
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    if s.owner.is_empty() {
                        "root".into()
                    } else {
                        s.owner.clone()
                    },
                ]);
            }
            print!("{}", tabulate(&rows));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_like_gos_tabwriter() {
        let rows = vec![
            vec!["ID".to_string(), "PID".into(), "STATUS".into()],
            vec![
                "a-long-container-id".to_string(),
                "1".into(),
                "running".into(),
            ],
        ];
        assert_eq!(
            tabulate(&rows),
            "ID                    PID         STATUS\na-long-container-id   1           running\n"
        );
    }
}

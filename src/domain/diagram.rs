//! Renders the transition table as Mermaid and Graphviz DOT. The files in state-diagrams/
//! are this output; a test fails when they drift.

use super::state::{State, TRANSITIONS};
use std::fmt::Write;

/// A Mermaid `stateDiagram-v2` of `TRANSITIONS`.
pub fn mermaid() -> String {
    let mut out = String::from("stateDiagram-v2\n");
    out.push_str("    [*] --> pending: change accepted\n");
    for e in TRANSITIONS {
        let _ = writeln!(out, "    {} --> {}: {}", id(e.from), id(e.to), e.label);
    }
    for state in State::ALL.iter().filter(|s| s.is_terminal()) {
        let _ = writeln!(out, "    {} --> [*]", id(*state));
    }
    for state in State::ALL {
        if state.as_str().contains('-') {
            let _ = writeln!(out, "    state \"{}\" as {}", state.as_str(), id(state));
        }
    }
    out
}

/// A Graphviz DOT digraph of `TRANSITIONS`; terminal states are drawn with a double border.
pub fn dot() -> String {
    let mut out = String::from(
        "digraph salary_sync_workflow {\n    rankdir=LR;\n    node [shape=box, style=rounded];\n",
    );
    out.push_str("    start [shape=point];\n");
    for state in State::ALL {
        let periphery = if state.is_terminal() { 2 } else { 1 };
        let _ = writeln!(out, "    \"{}\" [peripheries={periphery}];", state.as_str());
    }
    out.push_str("    start -> \"pending\" [label=\"change accepted\"];\n");
    for e in TRANSITIONS {
        let _ = writeln!(
            out,
            "    \"{}\" -> \"{}\" [label=\"{}\"];",
            e.from.as_str(),
            e.to.as_str(),
            e.label
        );
    }
    out.push_str("}\n");
    out
}

/// Mermaid ids cannot hold `-`.
fn id(state: State) -> String {
    state.as_str().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed diagrams are exactly what the table generates. To refresh them after
    /// changing `TRANSITIONS`: `salary-sync diagram > state-diagrams/workflow.mmd` and
    /// `salary-sync diagram --format dot > state-diagrams/workflow.dot`.
    #[test]
    fn committed_diagrams_match_the_transition_table() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("state-diagrams");
        for (file, generated) in [("workflow.mmd", mermaid()), ("workflow.dot", dot())] {
            let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert_eq!(
                committed, generated,
                "state-diagrams/{file} drifted from the transition table; regenerate it with `salary-sync diagram`"
            );
        }
    }

    #[test]
    fn every_state_appears_in_both_diagrams() {
        for state in State::ALL {
            assert!(dot().contains(&format!("\"{}\"", state.as_str())));
            assert!(mermaid().contains(state.as_str()));
        }
    }
}

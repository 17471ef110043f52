//! `chart-render CHART_DIR [VALUES_FILE...]`: prints the chart's objects as one YAML stream,
//! as `helm template` would (CRDs first), the values files merged over `values.yaml` in order.

use std::{path::PathBuf, process::ExitCode};

use serde_json::Value;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let Some(dir) = args.next() else {
        eprintln!("usage: chart-render CHART_DIR [VALUES_FILE...]");
        return ExitCode::from(2);
    };
    let mut overrides = Value::Object(Default::default());
    for file in args {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("chart-render: {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        };
        match serde_saphyr::from_str::<Value>(&text) {
            Ok(v) => chart_render::merge(&mut overrides, &v),
            Err(e) => {
                eprintln!("chart-render: {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let docs = match chart_render::render(&dir, &overrides) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("chart-render: {e}");
            return ExitCode::FAILURE;
        }
    };
    for doc in docs {
        match serde_saphyr::to_string(&doc.object) {
            Ok(y) => print!("---\n# Source: {}\n{y}", doc.source),
            Err(e) => {
                eprintln!("chart-render: {}: {e}", doc.source);
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

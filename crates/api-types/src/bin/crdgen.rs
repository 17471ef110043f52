//! Writes the operator's CRDs to `crds/` (or the directory given as the first argument), and
//! with `--chart DIR` also the Helm chart's copies (labelled as the kustomize base labels
//! them, see `api_types::crd::to_chart_yaml`) to `DIR` (`deploy/helm/qdrant-operator/crds`).
//! `just crds` runs it; tests fail when the committed files are stale.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

fn main() -> ExitCode {
    let mut dir = None;
    let mut chart = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--chart" {
            match args.next() {
                Some(d) => chart = Some(PathBuf::from(d)),
                None => return usage("--chart needs a directory"),
            }
        } else if dir.is_none() && !arg.to_string_lossy().starts_with('-') {
            dir = Some(PathBuf::from(arg));
        } else {
            return usage(&format!("unexpected argument {}", arg.display()));
        }
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from("crds"));
    let crds = api_types::crd::all();
    let mut files: Vec<(PathBuf, String)> = vec![];
    for (file, crd) in &crds {
        match api_types::crd::to_yaml(crd) {
            Ok(y) => files.push((dir.join(file), y)),
            Err(e) => {
                eprintln!("crdgen: cannot serialize {file}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    files.push((
        dir.join("kustomization.yaml"),
        api_types::crd::kustomization(),
    ));
    if let Some(chart) = &chart {
        for (file, crd) in &crds {
            match api_types::crd::to_chart_yaml(crd) {
                Ok(y) => files.push((chart.join(file), y)),
                Err(e) => {
                    eprintln!("crdgen: cannot serialize {file} for the chart: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    for d in std::iter::once(&dir).chain(chart.as_ref()) {
        if let Err(e) = std::fs::create_dir_all(d) {
            eprintln!("crdgen: cannot create {}: {e}", d.display());
            return ExitCode::FAILURE;
        }
    }
    for (path, text) in files {
        if let Err(code) = write(&path, &text) {
            return code;
        }
    }
    ExitCode::SUCCESS
}

fn write(path: &Path, text: &str) -> Result<(), ExitCode> {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("crdgen: cannot write {}: {e}", path.display());
        return Err(ExitCode::FAILURE);
    }
    println!("wrote {}", path.display());
    Ok(())
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("crdgen: {problem}\nusage: crdgen [CRDS_DIR] [--chart CHART_CRDS_DIR]");
    ExitCode::from(2)
}

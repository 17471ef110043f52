//! Retention of a schedule's backups: which QdrantBackups to delete. Pure (the caller lists
//! the schedule's backups and deletes what this returns).
//!
//! The rules, applied to the backups one schedule created:
//!
//! - **Never deleted**: a Pending or Running backup (whatever its age), and the newest
//!   Succeeded backup (a schedule never deletes its last good backup, whatever the rules say).
//! - **`keepLast: N`**: the newest N Succeeded backups are kept and older Succeeded ones are
//!   deleted ([`Rule::KeepLast`]). A Failed backup is kept only until a newer backup
//!   succeeds: Failed backups created before the newest Succeeded one are deleted
//!   ([`Rule::Superseded`]); those created after it are kept (they show that the schedule
//!   currently fails), and when no backup has succeeded yet every Failed one is kept. Failed
//!   backups do not count towards N.
//! - **`maxAge: D`**: Succeeded and Failed backups created more than D before now are
//!   deleted ([`Rule::MaxAge`]); one created exactly D ago is kept.
//! - **Both set**: a backup is deleted when either rule deletes it (the union), still minus
//!   the backups that are never deleted.
//!
//! "Newer" is by creation time; backups created in the same second are ordered by name
//! (CronJob job names grow with time, so the later run sorts last).

use std::fmt;

use api_types::{
    backup::{BackupPhase, Retention},
    validation::parse_max_age,
};
use jiff::Timestamp;

/// What retention needs to know of one QdrantBackup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.creationTimestamp`.
    pub created: Timestamp,
    /// `status.phase` (Pending when there is no status yet).
    pub phase: BackupPhase,
}

/// Why retention deletes a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A Succeeded backup older than the newest `keepLast` Succeeded ones.
    KeepLast(u32),
    /// A Failed backup created before the newest Succeeded one (with `keepLast` set).
    Superseded,
    /// A Succeeded or Failed backup older than `maxAge` (as the spec writes it, e.g. `7d`).
    MaxAge(String),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::KeepLast(n) => write!(
                f,
                "retention.keepLast {n}: older than the {n} newest successful backups"
            ),
            Rule::Superseded => write!(
                f,
                "retention.keepLast: failed, and a newer backup has succeeded since"
            ),
            Rule::MaxAge(d) => write!(f, "retention.maxAge {d}: created more than {d} ago"),
        }
    }
}

/// One backup to delete, and the first rule that deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// Name of the QdrantBackup.
    pub name: String,
    /// Why (the keepLast rules are reported before maxAge when both apply).
    pub rule: Rule,
}

/// The backups to delete under `retention` at `now`, oldest first (see the module docs for
/// the rules).
///
/// Errors: `retention.maxAge` does not parse (the message names the field); validation
/// refuses such a spec before retention runs.
pub fn to_delete(
    backups: &[BackupInfo],
    retention: &Retention,
    now: Timestamp,
) -> Result<Vec<Deletion>, String> {
    let max_age = match retention.max_age.as_deref() {
        Some(s) => Some((
            s,
            parse_max_age(s).map_err(|e| format!("spec.retention.maxAge: {e}"))?,
        )),
        None => None,
    };

    // Newest first.
    let mut sorted: Vec<&BackupInfo> = backups.iter().collect();
    sorted.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));

    let newest_succeeded = sorted
        .iter()
        .find(|b| b.phase == BackupPhase::Succeeded)
        .copied();

    let mut out = vec![];
    let mut succeeded_seen: u32 = 0;
    for b in &sorted {
        let is_newest_succeeded = newest_succeeded.is_some_and(|n| std::ptr::eq(n, *b));
        let before_newest_succeeded =
            newest_succeeded.is_some_and(|n| (b.created, &b.name) < (n.created, &n.name));
        let keep_last_rule = match (b.phase, retention.keep_last) {
            (BackupPhase::Succeeded, Some(n)) => {
                succeeded_seen += 1;
                (succeeded_seen > n).then_some(Rule::KeepLast(n))
            }
            (BackupPhase::Failed, Some(_)) if before_newest_succeeded => Some(Rule::Superseded),
            _ => None,
        };
        let max_age_rule = max_age.and_then(|(spec, d)| {
            (b.phase.is_finished() && now.duration_since(b.created) > d)
                .then(|| Rule::MaxAge(spec.to_string()))
        });
        let protected = is_newest_succeeded || !b.phase.is_finished();
        if protected {
            continue;
        }
        if let Some(rule) = keep_last_rule.or(max_age_rule) {
            out.push(Deletion {
                name: b.name.clone(),
                rule,
            });
        }
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use BackupPhase::{Failed, Pending, Running, Succeeded};
    use jiff::SignedDuration;

    use super::*;

    /// Now: 2026-03-10T12:00:00Z. Backups are created `hours_ago` before it.
    fn now() -> Timestamp {
        "2026-03-10T12:00:00Z".parse().unwrap()
    }

    fn b(name: &str, hours_ago: i64, phase: BackupPhase) -> BackupInfo {
        BackupInfo {
            name: name.into(),
            created: now() - SignedDuration::from_hours(hours_ago),
            phase,
        }
    }

    fn keep(n: u32) -> Retention {
        Retention {
            keep_last: Some(n),
            max_age: None,
        }
    }

    fn age(s: &str) -> Retention {
        Retention {
            keep_last: None,
            max_age: Some(s.into()),
        }
    }

    fn names(d: &[Deletion]) -> Vec<&str> {
        d.iter().map(|d| d.name.as_str()).collect()
    }

    fn run(backups: &[BackupInfo], r: &Retention) -> Vec<Deletion> {
        to_delete(backups, r, now()).unwrap()
    }

    /// Four Succeeded (s1 oldest .. s4 newest), one Running, one Failed (between s2 and s3).
    fn mixed() -> Vec<BackupInfo> {
        vec![
            b("s3", 48, Succeeded),
            b("s1", 96, Succeeded),
            b("r", 1, Running),
            b("f", 60, Failed),
            b("s4", 24, Succeeded),
            b("s2", 72, Succeeded),
        ]
    }

    #[test]
    fn keep_last_keeps_the_newest_succeeded_and_drops_superseded_failures() {
        let d = run(&mixed(), &keep(2));
        assert_eq!(names(&d), ["s1", "s2", "f"]);
        assert_eq!(d[0].rule, Rule::KeepLast(2));
        assert_eq!(d[2].rule, Rule::Superseded);
    }

    #[test]
    fn keep_last_larger_than_what_exists_deletes_only_superseded_failures() {
        assert_eq!(names(&run(&mixed(), &keep(4))), ["f"]);
        assert_eq!(names(&run(&mixed(), &keep(10))), ["f"]);
        assert_eq!(names(&run(&mixed(), &keep(3))), ["s1", "f"]);
    }

    #[test]
    fn keep_last_one_keeps_only_the_newest_succeeded() {
        assert_eq!(names(&run(&mixed(), &keep(1))), ["s1", "s2", "f", "s3"]);
    }

    #[test]
    fn failures_newer_than_the_newest_success_are_kept() {
        let backups = vec![
            b("s1", 50, Succeeded),
            b("f1", 60, Failed),
            b("f2", 40, Failed),
            b("f3", 30, Failed),
        ];
        assert_eq!(names(&run(&backups, &keep(1))), ["f1"]);
    }

    #[test]
    fn without_any_success_failures_are_kept_by_keep_last() {
        let backups = vec![b("f1", 60, Failed), b("f2", 40, Failed), b("p", 1, Pending)];
        assert!(run(&backups, &keep(1)).is_empty());
    }

    #[test]
    fn running_and_pending_are_never_deleted() {
        let backups = vec![
            b("s1", 1000, Succeeded),
            b("s2", 900, Succeeded),
            b("r", 2000, Running),
            b("p", 3000, Pending),
        ];
        assert_eq!(names(&run(&backups, &keep(1))), ["s1"]);
        assert_eq!(names(&run(&backups, &age("1h"))), ["s1"]);
        let both = Retention {
            keep_last: Some(1),
            max_age: Some("1h".into()),
        };
        assert_eq!(names(&run(&backups, &both)), ["s1"]);
    }

    #[test]
    fn max_age_deletes_old_finished_backups_but_never_the_last_good_one() {
        // 3d: s1 (96 h), s2 (72 h, exactly 3 d: kept) ... only s1 is older.
        let d = run(&mixed(), &age("3d"));
        assert_eq!(names(&d), ["s1"]);
        assert_eq!(d[0].rule, Rule::MaxAge("3d".into()));
        // 50h: s1, s2, f; s3 (48 h) and s4 stay.
        assert_eq!(names(&run(&mixed(), &age("50h"))), ["s1", "s2", "f"]);
        // 1h: everything finished but the newest Succeeded; the Running one stays too.
        assert_eq!(names(&run(&mixed(), &age("1h"))), ["s1", "s2", "f", "s3"]);
    }

    #[test]
    fn max_age_keeps_the_newest_succeeded_even_when_failures_are_newer() {
        let backups = vec![
            b("s", 100, Succeeded),
            b("f", 90, Failed),
            b("f2", 2, Failed),
        ];
        assert_eq!(names(&run(&backups, &age("1d"))), ["f"]);
    }

    #[test]
    fn max_age_deletes_old_failures_when_nothing_succeeded() {
        let backups = vec![b("f1", 100, Failed), b("f2", 2, Failed)];
        assert_eq!(names(&run(&backups, &age("1d"))), ["f1"]);
    }

    #[test]
    fn max_age_boundary_is_exclusive() {
        let backups = vec![
            b("old", 25, Succeeded),
            b("exact", 24, Succeeded),
            b("new", 1, Succeeded),
        ];
        assert_eq!(names(&run(&backups, &age("1d"))), ["old"]);
        assert_eq!(names(&run(&backups, &age("24h"))), ["old"]);
        assert_eq!(names(&run(&backups, &age("1440m"))), ["old"]);
    }

    #[test]
    fn both_rules_delete_the_union() {
        let both = Retention {
            keep_last: Some(3),
            max_age: Some("50h".into()),
        };
        // keepLast 3: s1, f. maxAge 50h: s1, s2, f. Union: s1, s2, f.
        let d = run(&mixed(), &both);
        assert_eq!(names(&d), ["s1", "s2", "f"]);
        assert_eq!(d[0].rule, Rule::KeepLast(3));
        assert_eq!(d[1].rule, Rule::MaxAge("50h".into()));
        assert_eq!(d[2].rule, Rule::Superseded);

        // A maxAge shorter than every backup still keeps the newest Succeeded.
        let both = Retention {
            keep_last: Some(3),
            max_age: Some("1m".into()),
        };
        assert_eq!(names(&run(&mixed(), &both)), ["s1", "s2", "f", "s3"]);
    }

    #[test]
    fn nothing_to_do() {
        assert!(run(&[], &keep(1)).is_empty());
        assert!(run(&[], &age("1d")).is_empty());
        let backups = vec![b("s1", 1, Succeeded)];
        assert!(run(&backups, &keep(1)).is_empty());
        assert!(run(&backups, &age("1m")).is_empty());
    }

    #[test]
    fn ties_in_creation_time_are_ordered_by_name() {
        let backups = vec![
            b("nightly-29000002", 5, Succeeded),
            b("nightly-29000001", 5, Succeeded),
            b("nightly-29000003", 5, Succeeded),
        ];
        assert_eq!(
            names(&run(&backups, &keep(1))),
            ["nightly-29000001", "nightly-29000002"]
        );
        // The newest by name is protected from maxAge too.
        assert_eq!(
            names(&run(&backups, &age("1h"))),
            ["nightly-29000001", "nightly-29000002"]
        );
    }

    #[test]
    fn keep_last_zero_still_keeps_the_last_good_backup() {
        // Validation refuses keepLast 0; retention stays safe anyway.
        assert_eq!(names(&run(&mixed(), &keep(0))), ["s1", "s2", "f", "s3"]);
    }

    #[test]
    fn bad_max_age_names_the_field() {
        let e = to_delete(&mixed(), &age("1y"), now()).unwrap_err();
        assert!(e.starts_with("spec.retention.maxAge: "), "{e}");
    }

    #[test]
    fn rules_explain_themselves() {
        assert_eq!(
            Rule::KeepLast(2).to_string(),
            "retention.keepLast 2: older than the 2 newest successful backups"
        );
        assert_eq!(
            Rule::MaxAge("7d".into()).to_string(),
            "retention.maxAge 7d: created more than 7d ago"
        );
        assert!(
            Rule::Superseded
                .to_string()
                .contains("newer backup has succeeded")
        );
    }
}

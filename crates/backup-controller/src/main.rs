//! `backup-controller`: runs the backup, schedule and restore controllers.

fn main() {}

//! Integration tests: the real router on a real port, against SQLite and PostgreSQL.

mod helpers;

mod accounts;
mod agones;
mod backups;
mod backups_s3;
mod billing;
mod cli;
mod console;
mod dns;
mod faults;
mod files;
mod games;
mod health;
mod lifecycle;
mod local_driver;
mod local_games;
mod manifests;
mod pages;
mod real_games;
mod schedules;
mod schema;
mod security;
mod servers;
mod sftp;
mod variables;

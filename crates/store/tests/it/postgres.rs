//! The story on TimescaleDB and on plain PostgreSQL, each in a database of its own.

use std::future::Future;

use sqlx::{Connection, PgConnection};
use store::Backend;

use crate::story::{self, Target};

const ADMIN_URL_VAR: &str = "DISPECER_TEST_PG_URL";

/// The admin URL of the test server. Fails (never skips) when it is not set.
fn admin_url() -> String {
    match std::env::var(ADMIN_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{ADMIN_URL_VAR} is not set: run scripts/test.sh (it starts a TimescaleDB server and \
             sets it), or set it to an admin URL such as \
             postgres://postgres:dispecer@127.0.0.1:55432/postgres"
        ),
    }
}

/// `admin` with its database replaced by `database`.
fn with_database(admin: &str, database: &str) -> String {
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{database}", &base[..path_start]);
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Runs `test` with the URL of a fresh database, then drops the database, whatever happened.
pub(crate) async fn in_fresh_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin = admin_url();
    let name = format!("dispecer_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test server at {ADMIN_URL_VAR}: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    let outcome = tokio::spawn(test(with_database(&admin, &name))).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .expect("drop the test database");
    let _ = conn.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn story_on_timescaledb() {
    in_fresh_database(|url| async move {
        story::run(Target {
            url: url.clone(),
            raw_url: url,
            backend: Backend::Timescale,
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn story_on_plain_postgresql() {
    in_fresh_database(|url| async move {
        story::run(Target {
            url: format!("{url}?timescaledb=off"),
            raw_url: url,
            backend: Backend::Postgres,
        })
        .await;
    })
    .await;
}

#[test]
fn database_urls() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:55432/postgres", "x"),
        "postgres://u:p@127.0.0.1:55432/x"
    );
    assert_eq!(
        with_database("postgresql://h:1/postgres?sslmode=disable", "x"),
        "postgresql://h:1/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

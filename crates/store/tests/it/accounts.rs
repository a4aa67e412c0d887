//! Users and sessions, on every backend.

use chrono::{Duration, TimeZone, Utc};
use store::{hash_token, Role, Store, User};

/// Adds users, refuses a taken name and an agency-less agency user, opens, reads, expires and
/// ends sessions.
pub async fn story(store: &Store) {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 29, 8, 0, 0)
        .single()
        .expect("a time");
    let ana = User {
        username: "ana".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        role: Role::Operator,
        agency: None,
        created_at: at,
    };
    assert!(store.add_user(&ana).await.expect("add ana"));
    assert!(
        !store.add_user(&ana).await.expect("add ana again"),
        "a taken name is refused"
    );
    let apa = User {
        username: "ioana".into(),
        role: Role::Agency,
        agency: Some("apa-brasov".into()),
        ..ana.clone()
    };
    assert!(store.add_user(&apa).await.expect("add ioana"));
    let no_agency = User {
        username: "x".into(),
        role: Role::Agency,
        agency: None,
        ..ana.clone()
    };
    assert!(
        store.add_user(&no_agency).await.is_err(),
        "an agency user without an agency is refused by the table"
    );
    assert_eq!(store.user("ana").await.expect("read"), Some(ana.clone()));
    assert_eq!(store.user("nobody").await.expect("read"), None);
    let names: Vec<String> = store
        .users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["ana", "ioana"]);

    let live = hash_token("session-1");
    let expired = hash_token("session-2");
    let until = at + Duration::hours(12);
    store
        .add_session(&live, "ioana", "csrf-1", at, until)
        .await
        .expect("add session");
    store
        .add_session(
            &expired,
            "ana",
            "csrf-2",
            at - Duration::hours(13),
            at - Duration::hours(1),
        )
        .await
        .expect("add session");
    let s = store
        .session(&live, at + Duration::hours(1))
        .await
        .expect("read session")
        .expect("live session");
    assert_eq!(
        (
            s.username.as_str(),
            s.role,
            s.agency.as_deref(),
            s.csrf.as_str(),
            s.expires_at
        ),
        ("ioana", Role::Agency, Some("apa-brasov"), "csrf-1", until)
    );
    assert_eq!(
        store.session(&live, until).await.expect("read"),
        None,
        "expired at its end"
    );
    assert_eq!(store.session(&expired, at).await.expect("read"), None);
    // A session in use is extended, never shortened; an expired one is not brought back.
    assert!(store
        .extend_session(&live, at, until + Duration::minutes(30))
        .await
        .expect("extend"));
    assert!(!store
        .extend_session(&live, at, until)
        .await
        .expect("not shortened"));
    assert!(store
        .session(&live, until)
        .await
        .expect("read")
        .is_some_and(|s| s.expires_at == until + Duration::minutes(30)));
    assert!(!store
        .extend_session(&expired, at, at + Duration::hours(1))
        .await
        .expect("not brought back"));
    assert_eq!(store.session(&expired, at).await.expect("read"), None);
    assert_eq!(store.delete_expired_sessions(at).await.expect("sweep"), 1);
    assert!(store.delete_session(&live).await.expect("logout"));
    assert!(!store.delete_session(&live).await.expect("logout twice"));
    assert_eq!(store.session(&live, at).await.expect("read"), None);

    // A new password ends the user's sessions.
    store
        .add_session(&live, "ana", "csrf-3", at, until)
        .await
        .expect("add session");
    assert!(store
        .set_password("ana", "other")
        .await
        .expect("set password"));
    assert_eq!(store.session(&live, at).await.expect("read"), None);
    assert!(!store
        .set_password("nobody", "x")
        .await
        .expect("set password"));
}

#[tokio::test]
async fn accounts_on_sqlite() {
    let store = Store::connect("sqlite::memory:").await.expect("connect");
    story(&store).await;
}

#[tokio::test]
async fn accounts_on_timescaledb() {
    crate::postgres::in_fresh_database(|url| async move {
        let store = Store::connect(&url).await.expect("connect");
        story(&store).await;
        store.close().await;
    })
    .await;
}

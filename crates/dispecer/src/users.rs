//! `dispecer user add|list|passwd`, and the demo's users.

use std::io::BufRead;

use anyhow::{bail, Context};
use store::{Role, Store, User};

use crate::config::{RoleArg, UserCommand};

/// The shortest password accepted.
const MIN_PASSWORD: usize = 10;

fn role(r: RoleArg) -> Role {
    match r {
        RoleArg::Operator => Role::Operator,
        RoleArg::Supervisor => Role::Supervisor,
        RoleArg::Agency => Role::Agency,
        RoleArg::Admin => Role::Admin,
    }
}

/// The new password: one line of standard input, or asked twice on the terminal.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("password: ")
            .context("cannot read the password from the terminal (use --password-stdin)")?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            bail!("the two passwords differ");
        }
        first
    };
    if password.chars().count() < MIN_PASSWORD {
        bail!("the password must have at least {MIN_PASSWORD} characters");
    }
    Ok(password)
}

pub async fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(o) => {
            let role = role(o.role);
            match (role, &o.agency) {
                (Role::Agency, None) => bail!("an agency user needs --agency (an agency id)"),
                (Role::Agency, Some(a)) => {
                    let city = city::load(&o.city)?;
                    if city.agency(a).is_none() {
                        bail!(
                            "{a:?} is not an agency of {}; see agencies.toml",
                            o.city.display()
                        );
                    }
                }
                (_, Some(_)) => bail!("--agency is only for --role agency"),
                (_, None) => {}
            }
            let name = o.username.trim();
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_whitespace) {
                bail!("a user name has 1 to 64 characters and no spaces");
            }
            let password = read_password(o.password_stdin)?;
            let password_hash = api::hash_password(password).await?;
            crate::app::prepare_sqlite_dir(&o.db.database_url)?;
            let store = Store::connect(&o.db.database_url).await?;
            let added = store
                .add_user(&User {
                    username: name.to_owned(),
                    password_hash,
                    role,
                    agency: o.agency.clone(),
                    created_at: chrono::Utc::now(),
                })
                .await?;
            store.close().await;
            if !added {
                bail!("there is already a user {name:?} (dispecer user passwd changes a password)");
            }
            tracing::info!(username = name, %role, "user added");
            println!(
                "user {name} added ({role}{})",
                o.agency.map(|a| format!(" of {a}")).unwrap_or_default()
            );
        }
        UserCommand::List(db) => {
            let store = Store::connect(&db.database_url).await?;
            for u in store.users().await? {
                println!(
                    "{:<24}  {:<10}  {:<24}  created {}",
                    u.username,
                    u.role.as_str(),
                    u.agency.as_deref().unwrap_or("-"),
                    u.created_at.to_rfc3339()
                );
            }
            store.close().await;
        }
        UserCommand::Passwd(o) => {
            let password = read_password(o.password_stdin)?;
            let hash = api::hash_password(password).await?;
            let store = Store::connect(&o.db.database_url).await?;
            let changed = store.set_password(&o.username, &hash).await?;
            store.close().await;
            if !changed {
                bail!("there is no user {:?}", o.username);
            }
            tracing::info!(username = %o.username, "password changed; sessions ended");
            println!(
                "password of {} changed; their sessions are ended",
                o.username
            );
        }
    }
    Ok(())
}

/// The demo's users: an operator, a supervisor and one agency user of the water company
/// (or the city's first agency), each with a fresh random password. Returns the lines to print
/// once the server is ready.
pub async fn demo_users(store: &Store, city: &model::City) -> anyhow::Result<Vec<String>> {
    let water = if city.agency("apa-brasov").is_some() {
        Some("apa-brasov".to_owned())
    } else {
        city.agencies.first().map(|a| a.id.as_str().to_owned())
    };
    let mut wanted = vec![
        ("demo-operator", Role::Operator, None),
        ("demo-supervisor", Role::Supervisor, None),
    ];
    if let Some(a) = water {
        wanted.push(("demo-agency", Role::Agency, Some(a)));
    }
    let mut lines = Vec::new();
    for (name, role, agency) in wanted {
        let secret: [u8; 9] = rand::random();
        let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let password_hash = api::hash_password(password.clone()).await?;
        let user = User {
            username: name.to_owned(),
            password_hash: password_hash.clone(),
            role,
            agency: agency.clone(),
            created_at: chrono::Utc::now(),
        };
        if !store.add_user(&user).await? {
            // Kept from an earlier demo: a new password, printed like the first.
            store.set_password(name, &password_hash).await?;
        }
        lines.push(format!(
            "  {name:<16} {password}  ({role}{})",
            agency.map(|a| format!(" of {a}")).unwrap_or_default()
        ));
    }
    lines.insert(
        0,
        "demo users (user name, password), valid until the next demo start:".to_owned(),
    );
    Ok(lines)
}

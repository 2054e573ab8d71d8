//! The command line. Without arguments the binary runs the server; `token` mints one JWT
//! room-access token signed with `JWT_SECRET` (from the environment or `.env`), prints it as
//! one line on stdout and exits, starting no server: for trying JWT access out, and for
//! scripts that hand out links.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::access::{ANY_ROOM, Claims, JwtSecret};
use crate::protocol::is_valid_room_id;

/// Exit code of a missing `JWT_SECRET` or an unusable argument.
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "prolitemeet-server",
    version,
    about = "ProLiteMeet signaling server. Without a command it serves, configured by environment variables (see README)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print one access token for a room, signed with JWT_SECRET, and exit.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The room the token admits to, or "*" for any room (and for POST /api/create-room).
    #[arg(long)]
    pub room: String,
    /// The display name the holder gets in the room (replaces the userName it sends).
    #[arg(long)]
    pub name: Option<String>,
    /// The holder becomes the room's host when it joins.
    #[arg(long)]
    pub host: bool,
    /// Seconds the token stays valid.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
}

impl TokenArgs {
    /// Prints the token (stdout, one line) or why not (stderr); the process's exit code.
    pub fn run(&self, jwt_secret: Option<&str>) -> ExitCode {
        match self.mint(jwt_secret, chrono::Utc::now().timestamp().unsigned_abs()) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("prolitemeet-server token: {why}");
                ExitCode::from(EXIT_USAGE)
            }
        }
    }

    /// The token these arguments describe, issued at `now` (Unix seconds).
    pub fn mint(&self, jwt_secret: Option<&str>, now: u64) -> Result<String, String> {
        let secret = jwt_secret
            .filter(|s| !s.trim().is_empty())
            .ok_or("JWT_SECRET is not set (in the environment or .env)")?;
        if self.room != ANY_ROOM && !is_valid_room_id(&self.room) {
            return Err(format!(
                "invalid --room {:?}: a room id (1 to 64 of A-Z a-z 0-9 _ -) or \"*\"",
                self.room
            ));
        }
        if self.ttl == 0 {
            return Err("--ttl must be at least 1 second".to_owned());
        }
        let claims = Claims {
            room: self.room.clone(),
            name: self.name.clone(),
            host: self.host,
            exp: now.saturating_add(self.ttl),
            nbf: None,
            iat: Some(now),
        };
        JwtSecret::new(secret)
            .mint(&claims)
            .map_err(|e| format!("cannot sign the token: {e}"))
    }
}

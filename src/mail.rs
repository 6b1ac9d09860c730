//! Outgoing mail: a file outbox by default (`<data-dir>/outbox/*.eml`), SMTP through lettre
//! when configured.

use std::path::PathBuf;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::authentication::Credentials,
};

use crate::config::{MailSettings, MailTransportKind, SmtpSecurity};

#[derive(Clone)]
enum Transport {
    File(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Sends plain-text mail.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

impl Mailer {
    pub fn new(settings: &MailSettings, outbox: PathBuf) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail.from {:?} is not an address: {e}", settings.from))?;
        let transport = match settings.transport {
            MailTransportKind::File => {
                crate::private_fs::create_private_dir(&outbox)?;
                Transport::File(outbox)
            }
            MailTransportKind::Smtp => {
                let smtp = &settings.smtp;
                let mut builder = match smtp.security {
                    SmtpSecurity::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                    }
                    SmtpSecurity::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?
                    }
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
                }
                .port(smtp.port);
                if !smtp.username.is_empty() {
                    builder = builder.credentials(Credentials::new(
                        smtp.username.clone(),
                        smtp.password.expose().to_string(),
                    ));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Self { from, transport })
    }

    /// Sends one message to `to`.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> anyhow::Result<()> {
        let to: Mailbox = to.parse()?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)?;
        match &self.transport {
            Transport::File(dir) => {
                let name = format!(
                    "{}-{}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                    uuid::Uuid::now_v7()
                );
                let tmp = dir.join(format!(".{name}.tmp"));
                crate::private_fs::write_private_async(tmp.clone(), message.formatted()).await?;
                // Rename so a reader never sees half a message.
                tokio::fs::rename(&tmp, dir.join(&name)).await?;
            }
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
        }
        Ok(())
    }
}

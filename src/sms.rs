//! Outgoing SMS: a file outbox by default (`<data-dir>/outbox/*.sms.txt`), or an HTTP gateway
//! that takes a POST of JSON `{to, text}`.

use std::path::PathBuf;

use crate::config::{SmsSettings, SmsTransportKind};

#[derive(Clone)]
enum Transport {
    File(PathBuf),
    Http {
        client: reqwest::Client,
        url: String,
    },
}

#[derive(Clone)]
pub struct SmsSender {
    transport: Transport,
}

impl SmsSender {
    pub fn new(settings: &SmsSettings, outbox: PathBuf) -> anyhow::Result<Self> {
        let transport = match settings.transport {
            SmsTransportKind::File => {
                crate::private_fs::create_private_dir(&outbox)?;
                Transport::File(outbox)
            }
            SmsTransportKind::Http => {
                if settings.http.url.is_empty() {
                    anyhow::bail!("sms.transport = \"http\" needs sms.http.url");
                }
                let client = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()?;
                Transport::Http {
                    client,
                    url: settings.http.url.clone(),
                }
            }
        };
        Ok(Self { transport })
    }

    pub async fn send(&self, to: &str, text: &str) -> anyhow::Result<()> {
        match &self.transport {
            Transport::File(dir) => {
                let name = format!(
                    "{}-{}.sms.txt",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                    uuid::Uuid::now_v7()
                );
                let tmp = dir.join(format!(".{name}.tmp"));
                crate::private_fs::write_private_async(
                    tmp.clone(),
                    format!("To: {to}\n\n{text}\n").into_bytes(),
                )
                .await?;
                tokio::fs::rename(&tmp, dir.join(&name)).await?;
            }
            Transport::Http { client, url } => {
                client
                    .post(url)
                    .json(&serde_json::json!({"to": to, "text": text}))
                    .send()
                    .await?
                    .error_for_status()?;
            }
        }
        Ok(())
    }
}

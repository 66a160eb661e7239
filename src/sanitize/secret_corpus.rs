//! Test-only corpus: fake but format-valid secrets of every built-in kind, benign text that
//! must survive untouched, and large clean/dirty tool outputs for the throughput figure.
//!
//! Every secret is generated at run time from a seeded generator, and every prefix is split
//! in the source (`cat(&["gh", "p_"])`), so no token-shaped literal is ever committed for
//! repository secret scanners to trip on.

use std::cell::Cell;

/// One planted secret: `text` contains `secret` in the context its rule needs.
#[derive(Debug, Clone)]
pub struct Sample {
    pub kind: &'static str,
    pub text: String,
    pub secret: String,
}

const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const DIGITS: &str = "0123456789";
const HEX: &str = "0123456789abcdef";
const BASE32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BECH32_UPPER: &str = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

thread_local! {
    static SEED: Cell<u64> = const { Cell::new(0x2545_f491_4f6c_dd1d) };
}

fn next() -> u64 {
    SEED.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

fn pick(charset: &str, n: usize) -> String {
    let cs = charset.as_bytes();
    (0..n)
        .map(|_| cs[(next() >> 33) as usize % cs.len()] as char)
        .collect()
}

pub fn alnum(n: usize) -> String {
    // Always mixed: real tokens of this length always are, and the checks rely on it.
    let mut s = pick(&format!("{UPPER}{LOWER}{DIGITS}"), n.saturating_sub(3));
    s.push_str(&pick(DIGITS, 1.min(n)));
    s.push_str(&pick(UPPER, 1.min(n.saturating_sub(1))));
    s.push_str(&pick(LOWER, 1.min(n.saturating_sub(2))));
    s
}

pub fn alpha(n: usize) -> String {
    pick(&format!("{UPPER}{LOWER}"), n)
}

pub fn lower_alnum(n: usize) -> String {
    pick(&format!("{LOWER}{DIGITS}"), n)
}

fn upper_alnum(n: usize) -> String {
    pick(&format!("{UPPER}{DIGITS}"), n)
}

pub fn hex(n: usize) -> String {
    pick(HEX, n)
}

pub fn digits(n: usize) -> String {
    let mut s = pick("123456789", 1);
    s.push_str(&pick(DIGITS, n - 1));
    s
}

pub fn b64(n: usize) -> String {
    pick(&format!("{UPPER}{LOWER}{DIGITS}+/"), n)
}

/// URL-safe base64 that starts and ends with an alphanumeric (as the regexes' boundaries
/// expect of real tokens' ends).
pub fn b64url(n: usize) -> String {
    let mut s = alnum(1);
    s.push_str(&pick(
        &format!("{UPPER}{LOWER}{DIGITS}-_"),
        n.saturating_sub(2),
    ));
    s.push_str(&alnum(1));
    s
}

pub fn uuid() -> String {
    format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12))
}

pub fn cat(parts: &[&str]) -> String {
    parts.concat()
}

/// A password with letters, digits and punctuation that is safe in URLs and `;` strings.
pub fn password() -> String {
    format!("P{}!{}", alnum(12), alnum(3))
}

pub fn github_pat() -> String {
    cat(&["gh", "p_", &alnum(36)])
}

/// Body lines of a fake PEM private key.
pub fn pem_body() -> String {
    let mut lines: Vec<String> = (0..6).map(|_| b64(64)).collect();
    lines.push(format!("{}==", b64(22)));
    lines.join("\n")
}

fn pem(label: &str) -> String {
    let begin = cat(&["-----BEGIN ", label, " PRIVATE", " KEY-----"]);
    let end = cat(&["-----END ", label, " PRIVATE", " KEY-----"]);
    format!("{begin}\n{}\n{end}", pem_body()).replace("  ", " ")
}

/// The first part of a Discord bot token: unpadded base64 of an 18- or 19-digit id.
fn discord_user_id() -> String {
    let n = 18 + (next() % 2) as usize;
    base64_encode(digits(n).as_bytes())
        .trim_end_matches('=')
        .to_string()
}

pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A token on its own in a sentence.
fn bare(kind: &'static str, secret: String) -> Sample {
    Sample {
        kind,
        text: format!("use {secret} for this"),
        secret,
    }
}

/// A secret in a context its rule needs; `{}` in `template` is the secret.
fn ctx(kind: &'static str, template: &str, secret: String) -> Sample {
    Sample {
        kind,
        text: template.replace("{}", &secret),
        secret,
    }
}

/// Two independently drawn samples (or more) of every built-in kind, to catch lucky draws.
pub fn samples() -> Vec<Sample> {
    let mut v = batch();
    v.extend(batch());
    v
}

/// Every kind of the built-in rules, drawn afresh, by family.
fn batch() -> Vec<Sample> {
    let mut v = Vec::new();
    v.extend(llm_providers());
    v.extend(cloud());
    v.extend(code_hosting_and_ci());
    v.extend(package_registries());
    v.extend(saas_chat());
    v.extend(saas_services());
    v.extend(structural());
    v.extend(http_authentication());
    v.extend(credentials_in_urls_connection_strings_a());
    v.extend(generic_assignments());
    v
}

/// LLM providers.
fn llm_providers() -> Vec<Sample> {
    vec![
        bare(
            "anthropic-api-key",
            cat(&["sk-", "ant-api03-", &b64url(93), "AA"]),
        ),
        bare(
            "anthropic-admin-key",
            cat(&["sk-", "ant-admin01-", &b64url(93), "AA"]),
        ),
        bare(
            "anthropic-oauth-token",
            cat(&["sk-", "ant-oat01-", &b64url(93), "AA"]),
        ),
        bare("anthropic-key", cat(&["sk-", "ant-sid01-", &b64url(60)])),
        bare(
            "openai-project-key",
            cat(&["sk-", "proj-", &b64url(74), "T3Blbk", "FJ", &b64url(74)]),
        ),
        bare(
            "openai-service-account-key",
            cat(&["sk-", "svcacct-", &b64url(74), "T3Blbk", "FJ", &b64url(74)]),
        ),
        bare(
            "openai-admin-key",
            cat(&["sk-", "admin-", &b64url(74), "T3Blbk", "FJ", &b64url(74)]),
        ),
        bare("openrouter-key", cat(&["sk-", "or-v1-", &hex(64)])),
        bare("langfuse-secret-key", cat(&["sk-", "lf-", &uuid()])),
        bare("langfuse-public-key", cat(&["pk-", "lf-", &uuid()])),
        bare("deepseek-key", cat(&["sk-", &hex(32)])),
        bare(
            "openai-key",
            cat(&["sk-", &alnum(20), "T3Blbk", "FJ", &alnum(20)]),
        ),
        bare("openai-key", cat(&["sk-", &alnum(48)])),
        bare("sk-api-key", cat(&["sk-", &alnum(36)])),
        bare("groq-key", cat(&["gs", "k_", &alnum(52)])),
        bare("xai-key", cat(&["xa", "i-", &alnum(80)])),
        bare("perplexity-key", cat(&["pp", "lx-", &alnum(48)])),
        bare("replicate-token", cat(&["r8", "_", &alnum(37)])),
        bare("huggingface-token", cat(&["hf", "_", &alpha(34)])),
        bare("huggingface-org-token", cat(&["api_", "org_", &alpha(34)])),
        bare("cerebras-key", cat(&["cs", "k-", &lower_alnum(48)])),
        bare("fireworks-key", cat(&["fw", "_", &alnum(24)])),
        bare("tavily-key", cat(&["tv", "ly-dev-", &alnum(32)])),
        bare("firecrawl-key", cat(&["fc", "-", &hex(32)])),
        bare(
            "langsmith-key",
            cat(&["lsv2", "_pt_", &hex(32), "_", &hex(10)]),
        ),
        bare(
            "pinecone-key",
            cat(&["pc", "sk_", &alnum(6), "_", &alnum(60)]),
        ),
    ]
}

/// Cloud.
fn cloud() -> Vec<Sample> {
    let b64_40 = || b64(40);
    vec![
        bare("aws-access-key-id", cat(&["AK", "IA", &pick(BASE32, 16)])),
        bare("aws-session-key-id", cat(&["AS", "IA", &pick(BASE32, 16)])),
        ctx(
            "aws-secret-access-key",
            "aws_secret_access_key = {}\nregion = us-east-1",
            b64_40(),
        ),
        ctx(
            "aws-secret-access-key",
            "\"SecretAccessKey\": \"{}\",",
            b64_40(),
        ),
        bare("aws-session-token", cat(&["FwoGZXIv", "YXdz", &b64(300)])),
        ctx(
            "aws-session-token",
            "aws_session_token={}",
            cat(&["IQoJb3Jp", "Z2lu", &b64(400)]),
        ),
        ctx("aws-session-token", "AWS_SECURITY_TOKEN: {}", b64(200)),
        bare("aws-bedrock-api-key", cat(&["AB", "SK", &b64(130)])),
        bare("gcp-api-key", cat(&["AI", "za", &b64url(35)])),
        bare("gcp-oauth-token", cat(&["ya", "29.", &b64url(150)])),
        bare("gcp-oauth-refresh-token", cat(&["1//", "0", &b64url(100)])),
        bare(
            "gcp-oauth-client-secret",
            cat(&["GOC", "SPX-", &b64url(28)]),
        ),
        ctx(
            "gcp-service-account-key",
            "{\"type\": \"service_account\", \"private_key_id\": \"abc\", \"private_key\": \"{}\", \"client_email\": \"x@p.iam.gserviceaccount.com\"}",
            pem("").replace('\n', "\\n"),
        ),
        bare(
            "firebase-messaging-key",
            cat(&["AAAA", &b64url(7), ":APA", "91b", &b64url(134)]),
        ),
        ctx(
            "azure-storage-account-key",
            "DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={};EndpointSuffix=core.windows.net",
            format!("{}==", b64(86)),
        ),
        ctx(
            "azure-connection-string-key",
            "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={}",
            format!("{}=", b64(43)),
        ),
        ctx(
            "azure-sas-signature",
            "https://acct1.blob.core.windows.net/c/b.txt?sv=2022-11-02&ss=b&srt=o&sp=r&sig={}",
            format!("{}%3D", alnum(43)),
        ),
        ctx(
            "azure-ad-client-secret",
            "client secret: {}",
            cat(&[&alnum(3), "8Q", "~", &b64url(34).replace('-', ".")]),
        ),
        bare(
            "azure-devops-pat",
            cat(&[&alnum(52), "JQQJ99", &alnum(18), "AZ", "DO", &alnum(4)]),
        ),
        bare("alibaba-access-key-id", cat(&["LT", "AI", &alnum(20)])),
        bare("tencent-secret-id", cat(&["AK", "ID", &alnum(32)])),
        bare("yandex-api-key", cat(&["AQ", "VN", &b64url(36)])),
        bare("digitalocean-token", cat(&["do", "p_v1_", &hex(64)])),
        bare("heroku-api-key", cat(&["HR", "KU-", &b64url(60)])),
        bare("vercel-token", cat(&["vc", "p_", &alnum(40)])),
        bare("netlify-token", cat(&["nf", "p_", &alnum(40)])),
        bare("render-api-key", cat(&["rn", "d_", &alnum(32)])),
        bare("flyio-token", cat(&["fm", "2_", &b64(200)])),
        bare("supabase-token", cat(&["sb", "p_", &hex(40)])),
        bare("supabase-secret-key", cat(&["sb_", "secret_", &b64url(32)])),
        bare("planetscale-token", cat(&["pscale", "_tkn_", &b64url(43)])),
        bare("pulumi-token", cat(&["pu", "l-", &hex(40)])),
        bare(
            "terraform-cloud-token",
            cat(&[&alnum(14), ".atlas", "v1.", &b64url(67)]),
        ),
        bare("vault-token", cat(&["hv", "s.", &b64url(90)])),
        bare("doppler-token", cat(&["dp", ".pt.", &alnum(43)])),
        bare("doppler-token", cat(&["dp", ".st.", "prd.", &alnum(43)])),
        bare(
            "onepassword-service-account-token",
            cat(&["ops", "_eyJ", &b64(300)]),
        ),
        bare("infracost-key", cat(&["ic", "o-", &alnum(32)])),
    ]
}

/// Code hosting and CI.
fn code_hosting_and_ci() -> Vec<Sample> {
    vec![
        bare("github-pat", github_pat()),
        bare("github-oauth-token", cat(&["gh", "o_", &alnum(36)])),
        bare("github-user-token", cat(&["gh", "u_", &alnum(36)])),
        bare("github-app-token", cat(&["gh", "s_", &alnum(36)])),
        bare("github-refresh-token", cat(&["gh", "r_", &alnum(36)])),
        bare(
            "github-fine-grained-pat",
            cat(&["github", "_pat_", &alnum(22), "_", &alnum(59)]),
        ),
        bare("gitlab-pat", cat(&["gl", "pat-", &b64url(20)])),
        bare("gitlab-deploy-token", cat(&["gl", "dt-", &b64url(20)])),
        bare(
            "gitlab-runner-token",
            cat(&["gl", "rt-", "t1_", &b64url(27)]),
        ),
        bare(
            "gitlab-runner-registration-token",
            cat(&["GR13", "48941", &b64url(20)]),
        ),
        bare(
            "gitlab-pipeline-trigger-token",
            cat(&["gl", "ptt-", &hex(40)]),
        ),
        bare(
            "gitlab-ci-job-token",
            cat(&["gl", "cbt-", "64_", &b64url(20)]),
        ),
        bare("gitlab-feed-token", cat(&["gl", "ft-", &b64url(20)])),
        bare(
            "gitlab-incoming-mail-token",
            cat(&["gl", "imt-", &b64url(25)]),
        ),
        bare("gitlab-scim-token", cat(&["gl", "soat-", &b64url(20)])),
        bare(
            "gitlab-feature-flag-token",
            cat(&["gl", "ffct-", &b64url(20)]),
        ),
        bare("gitlab-agent-token", cat(&["gl", "agent-", &b64url(50)])),
        bare("gitlab-oauth-secret", cat(&["gl", "oas-", &b64url(64)])),
        ctx(
            "gitlab-session-cookie",
            "Cookie2 _gitlab_session={}",
            hex(32),
        ),
        bare("buildkite-token", cat(&["bk", "ua_", &hex(40)])),
        bare(
            "circleci-token",
            cat(&["CCI", "PAT_", &alnum(22), "_", &hex(40)]),
        ),
        bare(
            "sourcegraph-token",
            cat(&["sg", "p_", &hex(16), "_", &hex(40)]),
        ),
        bare("atlassian-api-token", cat(&["ATA", "TT3", &b64url(186)])),
        bare(
            "postman-api-key",
            cat(&["PM", "AK-", &hex(24), "-", &hex(34)]),
        ),
        bare(
            "harness-token",
            cat(&["pa", "t.", &b64url(22), ".", &hex(24), ".", &alnum(20)]),
        ),
    ]
}

/// Package registries.
fn package_registries() -> Vec<Sample> {
    vec![
        bare("npm-token", cat(&["np", "m_", &alnum(36)])),
        ctx("npmrc-auth", "//registry.npmjs.org/:_authToken={}", uuid()),
        bare(
            "pypi-token",
            cat(&["py", "pi-AgEIcHlwaS5vcmc", &b64url(70)]),
        ),
        bare("dockerhub-token", cat(&["dc", "kr_pat_", &b64url(27)])),
        bare("cratesio-token", cat(&["ci", "o", &alnum(32)])),
        bare("rubygems-token", cat(&["ruby", "gems_", &hex(48)])),
        bare("nuget-key", cat(&["oy", "2", &lower_alnum(43)])),
        bare("clojars-token", cat(&["CLO", "JARS_", &lower_alnum(60)])),
        bare("prefect-key", cat(&["pn", "u_", &alnum(36)])),
    ]
}

/// SaaS: chat and messaging.
fn saas_chat() -> Vec<Sample> {
    vec![
        bare(
            "slack-bot-token",
            cat(&["xo", "xb-", &digits(12), "-", &digits(13), "-", &alnum(24)]),
        ),
        bare(
            "slack-user-token",
            cat(&[
                "xo",
                "xp-",
                &digits(12),
                "-",
                &digits(12),
                "-",
                &digits(13),
                "-",
                &hex(32),
            ]),
        ),
        bare(
            "slack-legacy-token",
            cat(&["xo", "xa-2-", &digits(12), "-", &alnum(30)]),
        ),
        bare(
            "slack-config-token",
            cat(&["xo", "xe.xo", "xp-1-", &upper_alnum(166)]),
        ),
        bare(
            "slack-app-token",
            cat(&[
                "xa",
                "pp-1-",
                &upper_alnum(11),
                "-",
                &digits(13),
                "-",
                &hex(64),
            ]),
        ),
        bare(
            "slack-webhook",
            cat(&[
                "https://hooks.",
                "slack.com/services/T",
                &upper_alnum(8),
                "/B",
                &upper_alnum(10),
                "/",
                &alnum(24),
            ]),
        ),
        bare(
            "discord-webhook",
            cat(&[
                "https://discord.com/api/",
                "webhooks/",
                &digits(18),
                "/",
                &b64url(68),
            ]),
        ),
        bare(
            "discord-bot-token",
            cat(&[&discord_user_id(), ".", &b64url(6), ".", &b64url(38)]),
        ),
        bare(
            "telegram-bot-token",
            cat(&[&digits(10), ":AA", &b64url(33)]),
        ),
    ]
}

/// SaaS: payments, mail, hosting and the rest.
fn saas_services() -> Vec<Sample> {
    vec![
        bare("stripe-secret-key", cat(&["sk", "_live_", &alnum(24)])),
        bare("stripe-restricted-key", cat(&["rk", "_live_", &alnum(24)])),
        bare("stripe-publishable-key", cat(&["pk", "_live_", &alnum(24)])),
        bare("stripe-webhook-secret", cat(&["wh", "sec_", &alnum(32)])),
        bare("elevenlabs-key", cat(&["sk", "_", &hex(48)])),
        bare("twilio-api-key", cat(&["S", "K", &hex(32)])),
        bare("twilio-account-sid", cat(&["A", "C", &hex(32)])),
        ctx("twilio-auth-token", "TWILIO_AUTH_TOKEN={}", hex(32)),
        bare(
            "sendgrid-api-key",
            cat(&["S", "G.", &b64url(22), ".", &b64url(43)]),
        ),
        bare("mailgun-api-key", cat(&["ke", "y-", &alnum(32)])),
        bare("mailgun-public-key", cat(&["pub", "key-", &hex(32)])),
        bare(
            "mailgun-private-key",
            cat(&[&hex(32), "-", &hex(8), "-", &hex(8)]),
        ),
        bare("mailchimp-api-key", cat(&[&hex(32), "-us", "14"])),
        bare("databricks-token", cat(&["da", "pi", &hex(32)])),
        bare("shopify-access-token", cat(&["sh", "pat_", &hex(32)])),
        bare("shopify-custom-app-token", cat(&["sh", "pca_", &hex(32)])),
        bare("shopify-private-app-token", cat(&["sh", "ppa_", &hex(32)])),
        bare("shopify-shared-secret", cat(&["sh", "pss_", &hex(32)])),
        bare("linear-api-key", cat(&["lin", "_api_", &alnum(40)])),
        bare("notion-token", cat(&["nt", "n_", &alnum(46)])),
        bare("notion-token", cat(&["sec", "ret_", &alnum(43)])),
        bare("sentry-user-token", cat(&["sntr", "yu_", &hex(64)])),
        bare("sentry-org-token", cat(&["sntr", "ys_", &b64(120)])),
        bare("grafana-cloud-token", cat(&["gl", "c_", &b64(60)])),
        bare(
            "grafana-service-account-token",
            cat(&["gl", "sa_", &alnum(32), "_", &hex(8)]),
        ),
        bare("newrelic-user-key", cat(&["NR", "AK-", &upper_alnum(27)])),
        bare(
            "mapbox-secret-token",
            cat(&["sk", ".eyJ", &b64url(60), ".", &b64url(22)]),
        ),
        bare("square-token", cat(&["sq0", "atp-", &b64url(22)])),
        bare("square-token", cat(&["EA", "AA", &b64url(60)])),
        bare("facebook-access-token", cat(&["EA", "AC", &alnum(120)])),
        bare("dropbox-token", cat(&["s", "l.", &b64url(140)])),
        bare("contentful-token", cat(&["CF", "PAT-", &b64url(43)])),
        bare("figma-token", cat(&["fi", "gd_", &b64url(40)])),
        bare("resend-key", cat(&["r", "e_", &alnum(8), "_", &alnum(24)])),
        bare(
            "airtable-token",
            cat(&["pa", "t", &alnum(14), ".", &hex(64)]),
        ),
        bare("adafruit-key", cat(&["ai", "o_", &alnum(28)])),
        bare("typeform-token", cat(&["tf", "p_", &b64url(44)])),
        bare("shippo-token", cat(&["shippo", "_live_", &hex(40)])),
        bare("adobe-client-secret", cat(&["p8", "e-", &alnum(32)])),
        bare("duffel-token", cat(&["duffel", "_live_", &b64url(43)])),
        bare(
            "dynatrace-token",
            cat(&["dt0", "c01.", &upper_alnum(24), ".", &upper_alnum(64)]),
        ),
        bare("easypost-key", cat(&["EZ", "AK", &alnum(54)])),
        bare(
            "flutterwave-secret-key",
            cat(&["FLWSECK", "_TEST-", &hex(32), "-X"]),
        ),
        bare("frameio-token", cat(&["fio", "-u-", &b64url(64)])),
        bare(
            "teams-webhook",
            cat(&[
                "https://contoso.webhook.",
                "office.com/webhookb2/",
                &uuid(),
                "@",
                &uuid(),
                "/IncomingWebhook/",
                &hex(32),
                "/",
                &uuid(),
            ]),
        ),
        bare("newrelic-browser-key", cat(&["NR", "JS-", &hex(19)])),
        bare("newrelic-insert-key", cat(&["NR", "II-", &b64url(32)])),
        bare("openshift-token", cat(&["sha256", "~", &b64url(43)])),
        bare("readme-key", cat(&["rd", "me_", &lower_alnum(70)])),
        bare("scalingo-token", cat(&["tk", "-us-", &b64url(48)])),
        bare(
            "brevo-key",
            cat(&["xkey", "sib-", &hex(64), "-", &alnum(16)]),
        ),
        bare("twitter-bearer-token", cat(&[&"A".repeat(21), &alnum(80)])),
        bare(
            "age-secret-key",
            cat(&["AGE-SECRET", "-KEY-1", &pick(BECH32_UPPER, 58)]),
        ),
    ]
}

/// Structural.
fn structural() -> Vec<Sample> {
    vec![
        bare(
            "jwt",
            cat(&[
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
                ".",
                "eyJ",
                &b64url(80),
                ".",
                &b64url(43),
            ]),
        ),
        ctx("private-key", "key file:\n{}\n", pem("RSA")),
        ctx(
            "putty-private-key",
            "PuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\nPublic-Lines: 1\nAAAAB3NzaC1yc2E\nPrivate-Lines: 3\n{}\nPrivate-MAC: 0a1b\n",
            format!("{}\n{}\n{}", b64(64), b64(64), b64(20)),
        ),
        ctx(
            "azure-storage-account-key",
            "az storage account keys list: [{\"keyName\": \"key1\", \"value\": \"{}\"}]",
            format!("{}==", b64(86)),
        ),
        ctx("private-key", "{}", pem("OPENSSH")),
        ctx("private-key", "{}", pem("ENCRYPTED")),
        ctx("private-key", "{}", pem("EC")),
        ctx(
            "kubeconfig-client-key",
            "users:\n- name: admin\n  user:\n    client-key-data: {}\n",
            b64(400),
        ),
        ctx(
            "kubernetes-secret",
            "apiVersion: v1\ndata:\n  config.json: {}\nkind: Secret\nmetadata:\n  name: regcred\n",
            b64(120),
        ),
        ctx(
            "kubernetes-secret",
            "items:\n- apiVersion: v1\n  kind: Secret\n  data:\n    username: YWRtaW4=\n    tls.crt: {}\n",
            b64(64),
        ),
        ctx(
            "kubernetes-secret",
            "{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"data\": {\"db-url\": \"{}\"}}",
            b64(48),
        ),
    ]
}

/// HTTP authentication.
fn http_authentication() -> Vec<Sample> {
    vec![
        ctx("authorization-header", "Authorization: Token {}", alnum(40)),
        ctx(
            "authorization-header",
            "{\"headers\": {\"authorization\": \"{}\"}}",
            alnum(40),
        ),
        ctx("bearer-token", "got Bearer {} back", b64url(48)),
        ctx(
            "basic-auth",
            "sent Basic {} to the proxy",
            base64_encode(format!("deploy:{}", password()).as_bytes()),
        ),
        ctx(
            "api-key-header",
            "curl -H 'x-api-key: {}' https://api.example.com",
            alnum(32),
        ),
        ctx("cookie-header", "Cookie: session={}; theme=dark", alnum(40)),
    ]
}

/// Credentials in URLs, connection strings and command lines.
fn credentials_in_urls_connection_strings_a() -> Vec<Sample> {
    vec![
        ctx(
            "url-credentials",
            "postgres://app:{}@db.example.com:5432/app",
            password(),
        ),
        ctx(
            "url-credentials",
            "mongodb+srv://admin:{}@cluster0.abcde.mongodb.net/test",
            password(),
        ),
        ctx("url-credentials", "redis://:{}@cache:6379/0", password()),
        ctx(
            "url-credentials",
            "git clone https://{}@github.com/org/repo.git",
            hex(40),
        ),
        ctx(
            "cli-password",
            "docker login -u deploy -p {} registry.example.com",
            password(),
        ),
        ctx(
            "cli-password",
            "redis-cli -h cache -a '{}' ping",
            password(),
        ),
        ctx(
            "cli-password",
            "htpasswd -b -c .htpasswd admin {}",
            password(),
        ),
        ctx(
            "connection-string-password",
            "Server=db;Database=app;User Id=sa;Password={};",
            password(),
        ),
        ctx(
            "connection-string-password",
            "Driver={ODBC Driver 18};Server=db;UID=sa;PWD={};",
            password(),
        ),
        ctx(
            "url-query-secret",
            "https://api.example.com/v1/items?api_key={}&q=1",
            alnum(32),
        ),
        ctx(
            "url-query-secret",
            "jdbc:mysql://db:3306/app?user=root&password={}",
            password(),
        ),
        ctx(
            "cli-secret-flag",
            "deploy --token {} --region eu",
            alnum(30),
        ),
        ctx("cli-secret-flag", "login --password='{}'", password()),
        ctx(
            "cli-user-password",
            "curl -u admin:{} https://example.com",
            password(),
        ),
        ctx("mysql-password", "mysql -h db -u root -p{} app", password()),
        ctx(
            "sshpass-password",
            "sshpass -p '{}' ssh deploy@host",
            password(),
        ),
        ctx(
            "netrc-password",
            "machine api.example.com login bot password {}",
            password(),
        ),
    ]
}

/// Generic assignments.
fn generic_assignments() -> Vec<Sample> {
    vec![
        ctx("secret-assignment", "DB_PASSWORD={}", password()),
        ctx(
            "secret-assignment",
            "export MY_SERVICE_API_KEY=\"{}\"",
            alnum(30),
        ),
        ctx(
            "secret-assignment",
            "config = {\"client_secret\": \"{}\"}",
            alnum(30),
        ),
        ctx("secret-assignment", "smtp:\n  password: {}\n", password()),
        ctx("secret-assignment", "DATADOG_API_KEY={}", hex(32)),
    ]
}

/// The same text in the places a coding-agent transcript puts secrets.
pub fn surroundings(text: &str) -> Vec<String> {
    let json = serde_json::to_string(text).unwrap_or_default();
    vec![
        text.to_string(),
        format!("please run this: {text}\nthanks"),
        format!("```\n{text}\n```"),
        format!("'{text}'"),
        format!("({text})"),
        format!("{{\"command\":{json}}}"),
        format!(
            "{{\"body\":{}}}",
            serde_json::to_string(&format!("{{\"content\":{json}}}")).unwrap_or_default()
        ),
        format!("2026-08-23T09:14:02Z ERROR request failed: {text}; retrying"),
        format!("中文 {text} 🎉"),
    ]
}

/// Text that looks like secrets to a careless pattern but is not.
pub fn benign_corpus() -> Vec<&'static str> {
    vec![
        "commit 3f9a1c2b7d8e4f5a6b7c8d9e0f1a2b3c4d5e6f7a",
        "Merge: 3f9a1c2 7d8e4f5",
        "session 01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00 started",
        "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "\"integrity\": \"sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==\"",
        "\"resolved\": \"https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz\"",
        "short base64 aGVsbG8gd29ybGQ= and dXNlcg==",
        "/home/user/projects/omp-langfuse/src/main.rs:42:7",
        "C:\\Users\\dev\\AppData\\Local\\Temp\\build-1234",
        "the task-list shows 3 open items; see docs/task-list.md",
        "The token budget is 4096 tokens; keep the secret sauce secret.",
        "Use a Bearer token in the Authorization header.",
        "Authorization: Bearer <token>",
        "curl -H \"Authorization: Bearer $GITHUB_TOKEN\" https://api.github.com/user",
        "max_tokens: 4096",
        "\"max_tokens\": 4096, \"temperature\": 0.2",
        "let token = get_token(&config)?;",
        "const apiKey = process.env.OPENAI_API_KEY;",
        "api_key = os.environ[\"OPENAI_API_KEY\"]",
        "https://github.com/org/repo/blob/main/src/lib.rs#L10-L20",
        "git@github.com:org/repo.git",
        "postgres://localhost:5432/app",
        "http://localhost:8080/api?limit=10&page=2&sort=desc",
        "docker pull ghcr.io/org/image@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "2026-08-23T09:14:02.117Z INFO request done in 12ms",
        "error[E0502]: cannot borrow `x` as mutable because it is also borrowed as immutable",
        "这是一个测试，包含中文字符。🎉 done",
        "a key-value store keyed by task id; the keyboard layout is us",
        "Basic usage: run `cargo build` then `cargo test`",
        "added 120 packages, and audited 121 packages in 3s",
        "def authenticate(user, password):\n    return check(password)",
        "SSH_AUTH_SOCK=/run/user/1000/keyring/ssh",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "export TOKEN_LIMIT=4096",
        "GIT_AUTHOR_NAME=Jane_Doe_Smith",
        "{\"type\":\"tool_use\",\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"name\":\"bash\"}",
        "call_abc123XYZ chatcmpl-9x8y7z msg_01XFDUDYJgAACzvnptvVoYEL resp_68a1b2c3d4e5f6",
        "trace 0af7651916cd43dd8448eb211c80319c span b7ad6b7169203331",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "node-v20.11.1-linux-x64.tar.xz v1.2.3-beta.4",
        "jane.doe@example.com wrote at 12:34:56",
        "fe80::1ff:fe23:4567:890a and 192.168.1.10:8080",
        "secretName: tls-cert\ntokenizer: cl100k_base",
        "auth: required",
        "password: <enter your password>",
        "eos_token: </s>",
        ".sk-folding-cube .sk-cube1 { transform: rotate(45deg); }",
        "at NodeModulesResolutionPlugin.plugin.SomeVeryLongClassNameForTesting(index.js:1:2)",
        "let re_compiled_patternwithverylongname = Regex::new(p);",
        "function(e){return e.token=t.key,e}",
        "scikit-learn==1.5.0 numpy>=2",
        "AccountName=devstoreaccount1;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1",
        "ls -la ~/.ssh && cat ~/.ssh/id_ed25519.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host",
        "see https://example.com/?key=abc and ?token=xyz",
        "The secret to fast builds: cache everything. Secrets go in a vault.",
        "apiKey: process.env.API_KEY",
        "password=\"${DB_PASSWORD}\"",
        "docker run -u 1000:1000 -p 8080:8080 image",
        "mysql -h localhost -u root -p",
        "stripe price pk: price_1NaBcD2eFgHiJkLm",
        "0x6080604052348015600f57600080fd5b50",
        "Traceback (most recent call last):\n  File \"/app/main.py\", line 3, in <module>",
    ]
}

/// Realistic, secret-free tool output of about `bytes` bytes (logs, code, JSON lines).
pub fn clean_tool_output(bytes: usize) -> String {
    const LINES: [&str; 12] = [
        "   Compiling serde_json v1.0.154",
        "warning: unused variable: `token_count` --> src/main.rs:42:9",
        "test redact::tests::benign_text_is_untouched_and_borrowed ... ok",
        "{\"level\":\"info\",\"msg\":\"request done\",\"path\":\"/api/v1/items\",\"ms\":12}",
        "fn parse(input: &str) -> Result<Key, Error> { let key = input.trim(); Ok(Key(key.into())) }",
        "commit 3f9a1c2b7d8e4f5a6b7c8d9e0f1a2b3c4d5e6f7a Author: Jane Doe <jane@example.com>",
        "drwxr-xr-x  5 user user 4096 Aug 23 09:14 src",
        "The session key is derived from the password using Argon2; tokens are rotated daily.",
        "  \"integrity\": \"sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==\",",
        "https://docs.example.com/guide/authentication#basic-auth see also ?page=2&limit=50",
        "这是一个测试行，包含一些中文。 Ünïcödé text — with dashes…",
        "2026-08-23T09:14:02.117Z DEBUG pool: connection 17 checked out (idle=3, max=16)",
    ];
    let mut out = String::with_capacity(bytes + 200);
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(LINES[i % LINES.len()]);
        out.push_str(&format!(" #{i}\n"));
        i += 1;
    }
    out
}

/// Like [`clean_tool_output`], with a planted secret about every 4 KB.
pub fn dirty_tool_output(bytes: usize) -> String {
    let samples = samples();
    let clean = clean_tool_output(4_096);
    let mut out = String::with_capacity(bytes + 8_192);
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&clean);
        out.push_str(&samples[i % samples.len()].text);
        out.push('\n');
        i += 1;
    }
    out
}

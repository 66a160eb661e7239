//! Test-only corpus of secrets written the way people write them: prefix-less provider tokens
//! (their formats as the providers publish them) assigned in 50-odd syntaxes, secret names
//! the old name test missed, secrets in the middle of a line, encoded secrets, secrets echoed
//! away from the assignment that identified them, and tokens glued to the word before; plus
//! near-misses that must stay. Every value is generated at run time (see `secret_corpus`).
//!
//! `cargo test syntax_corpus -- --nocapture` prints the per-class table.

use super::secret_corpus::{alnum, b64, b64url, base64_encode, cat, digits, hex, uuid};

/// One planted secret. `before` (if any) is redacted first by the same redactor: the
/// context that identifies the secret, which `text` then repeats without context.
#[derive(Debug, Clone)]
pub struct Case {
    pub class: &'static str,
    pub syntax: String,
    pub before: Option<String>,
    pub text: String,
    /// Strings none of which may survive.
    pub secrets: Vec<String>,
}

/// Providers whose tokens have no distinctive prefix (caught only by their context): the
/// variable name (snake, camel and kebab forms are derived from it) and a value generator.
type Token = (&'static str, fn() -> String);

fn tokens() -> Vec<Token> {
    vec![
        ("DATADOG_API_KEY", || hex(32)),
        ("DD_APP_KEY", || hex(40)),
        ("TWILIO_AUTH_TOKEN", || hex(32)),
        ("HEROKU_API_KEY", uuid),
        ("MAILCHIMP_API_KEY", || {
            format!("{}-us{}", hex(32), digits(2))
        }),
        ("ALGOLIA_ADMIN_KEY", || hex(32)),
        ("CLOUDFLARE_API_TOKEN", || b64url(40)),
        ("OKTA_API_TOKEN", || format!("00{}", b64url(40))),
        ("AUTH0_CLIENT_SECRET", || b64url(64)),
        ("FACEBOOK_APP_SECRET", || hex(32)),
        ("AWS_SECRET_ACCESS_KEY", || b64(40)),
        ("DB_PASSWORD", || format!("Pw{}#{}", alnum(10), alnum(4))),
        ("JWT_SECRET", || alnum(48)),
        ("STRIPE_KEY", || alnum(32)),
    ]
}

/// The syntaxes: a template with `{U}` (UPPER_SNAKE), `{s}` (snake), `{c}` (camelCase),
/// `{k}` (kebab) and `{v}` (the value).
const SYNTAXES: &[(&str, &str)] = &[
    ("dotenv", "{U}={v}"),
    ("dotenv-quoted", "{U}=\"{v}\""),
    ("shell-export", "export {U}='{v}'"),
    ("shell-inline", "{U}={v} ./deploy.sh --prod"),
    ("yaml", "{s}: {v}"),
    ("yaml-nested", "app:\n  {s}: \"{v}\"\n  region: eu"),
    ("yaml-list", "env:\n  - {U}={v}"),
    ("toml", "{s} = \"{v}\""),
    ("ini", "[prod]\n{s}={v}"),
    ("properties", "app.{s}={v}"),
    ("json", "{\"{c}\": \"{v}\", \"region\": \"eu\"}"),
    ("js-object", "const config = { {c}: '{v}', region: 'eu' };"),
    ("ts-typed", "const {c}: string = \"{v}\";"),
    ("python", "{s} = \"{v}\""),
    ("python-typed", "{s}: str = '{v}'"),
    (
        "python-setdefault",
        "os.environ.setdefault(\"{U}\", \"{v}\")",
    ),
    ("python-dict", "settings = {\"{s}\": \"{v}\"}"),
    ("go-var", "var {c} string = \"{v}\""),
    ("go-short", "{c} := \"{v}\""),
    ("go-backtick", "{c} := `{v}`"),
    ("go-const", "const {c} = \"{v}\""),
    ("rust-let", "let {s}: &str = \"{v}\";"),
    ("rust-const", "const {U}: &str = \"{v}\";"),
    ("java-setproperty", "System.setProperty(\"{U}\", \"{v}\");"),
    ("java-field", "private static final String {U} = \"{v}\";"),
    ("kotlin-val", "val {c}: String = \"{v}\""),
    ("csharp", "string {c} = @\"{v}\";"),
    ("php-assign", "${c} = '{v}';"),
    ("php-append", "${c} .= \"{v}\";"),
    ("php-define", "define('{U}', '{v}');"),
    ("ruby-env", "ENV[\"{U}\"] = \"{v}\""),
    ("ruby-hash-rocket", "{ :{s} => \"{v}\" }"),
    ("ruby-hash", "{ {s}: \"{v}\" }"),
    ("terraform", "  {s} = \"{v}\""),
    (
        "terraform-variable",
        "variable \"{s}\" {\n  type    = string\n  default = \"{v}\"\n}",
    ),
    ("dockerfile-env", "ENV {U} {v}"),
    ("dockerfile-env-eq", "ENV {U}={v}"),
    ("dockerfile-arg", "ARG {U}={v}"),
    ("makefile-colon", "{U} := {v}"),
    ("makefile-double-colon", "{U} ::= {v}"),
    ("makefile-triple-colon", "{U} :::= {v}"),
    ("makefile-conditional", "{U} ?= {v}"),
    ("xml-element", "<config><{c}>{v}</{c}></config>"),
    ("xml-attribute", "<add key=\"x\" {c}=\"{v}\" />"),
    (
        "jenkins-secret",
        "<org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>\n  <id>{k}</id>\n  <secret>{v}</secret>\n</org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>",
    ),
    (
        "jenkins-password",
        "<username>deploy</username>\n<password>{v}</password>",
    ),
    ("http-header", "X-{c}: {v}"),
    ("cli-flag", "mytool --{k} {v} --verbose"),
    ("cli-flag-eq", "mytool --{k}={v}"),
    (
        "url-query",
        "https://api.example.com/v1/items?{s}={v}&page=2",
    ),
    ("prose-dash", "the {s} - '{v}'"),
    ("prose-is", "The {s} is {v} (do not share)."),
    ("grep-prefix", "src/app.py:12:{U}={v}"),
    ("grep-prefix-yaml", "config/app.yml:7:  {s}: {v}"),
    (
        "log-line",
        "2026-08-23T09:14:02Z INFO loaded {s}={v} from vault",
    ),
    ("systemd", "Environment={U}={v}"),
    ("nginx", "proxy_set_header X-{c} \"{v}\";"),
    ("sql", "ALTER USER app WITH {U} '{v}';"),
    (
        "markdown-table",
        "| name | value |\n| --- | --- |\n| {U} | {v} |",
    ),
    ("powershell", "$env:{U} = \"{v}\""),
    ("k8s-env", "- name: {U}\n  value: \"{v}\""),
];

/// `DB_PASSWORD` as `db_password`.
fn snake(upper: &str) -> String {
    upper.to_ascii_lowercase()
}

/// `DB_PASSWORD` as `dbPassword`.
fn camel(upper: &str) -> String {
    let mut out = String::new();
    for (n, word) in upper.split('_').enumerate() {
        let word = word.to_ascii_lowercase();
        match (n, word.split_at_checked(1)) {
            (0, _) | (_, None) => out.push_str(&word),
            (_, Some((first, rest))) => {
                out.push_str(&first.to_ascii_uppercase());
                out.push_str(rest);
            }
        }
    }
    out
}

fn fill(template: &str, upper: &str, v: &str) -> String {
    template
        .replace("{U}", upper)
        .replace("{s}", &snake(upper))
        .replace("{c}", &camel(upper))
        .replace("{k}", &snake(upper).replace('_', "-"))
        .replace("{v}", v)
}

/// Every case of every class.
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    assignments(&mut out);
    names(&mut out);
    command_lines(&mut out);
    encoded(&mut out);
    echoed(&mut out);
    glued(&mut out);
    out
}

/// A case with one secret and no context before it.
fn plain(class: &'static str, syntax: String, text: String, secret: String) -> Case {
    Case {
        class,
        syntax,
        before: None,
        text,
        secrets: vec![secret],
    }
}

/// Classes 1 and 3: prefix-less tokens in every syntax.
fn assignments(out: &mut Vec<Case>) {
    // 1 and 3: prefix-less tokens, every syntax, wherever the assignment sits in a line.
    for (upper, value) in tokens() {
        for (syntax, template) in SYNTAXES {
            let v = value();
            let class = if syntax.starts_with("grep")
                || syntax.starts_with("log")
                || syntax.starts_with("prose")
                || *syntax == "shell-inline"
                || syntax.starts_with("cli")
                || *syntax == "http-header"
            {
                "3 anywhere in a line"
            } else {
                "1 assignment syntaxes"
            };
            out.push(plain(
                class,
                format!("{syntax}/{}", snake(upper)),
                fill(template, upper, &v),
                v,
            ));
        }
    }
}

/// Class 2: names the old test missed.
fn names(out: &mut Vec<Case>) {
    // 2: names the old test missed, in a few syntaxes each.
    for name in [
        "creds",
        "mySecretString",
        "some_api_token_123",
        "stripe_key",
        "stripeKey",
        "x_auth",
        "dbPass",
        "smtp_pwd",
        "APP_PAT",
        "signingKey",
        "webhookSecret",
        "apikey",
        "npmAuthToken",
        "sessionCookie",
    ] {
        for template in [
            "{n} = \"{v}\"",
            "{n}: {v}",
            "\"{n}\": \"{v}\"",
            "{n}={v}",
            "cfg.{n} = '{v}'",
        ] {
            let v = alnum(28);
            out.push(plain(
                "2 secret names",
                format!("{template}/{name}"),
                template.replace("{n}", name).replace("{v}", &v),
                v,
            ));
        }
    }
}

/// Class 3: command lines.
fn command_lines(out: &mut Vec<Case>) {
    // 3: command lines.
    for (syntax, template) in [
        (
            "curl-header",
            "curl -H 'X-Api-Key: {v}' https://api.example.com",
        ),
        (
            "curl-user",
            "curl -u deploy:{v} https://registry.example.com",
        ),
        ("cli-token", "gh auth login --with-token --token {v}"),
        (
            "export-after-prose",
            "first run export SERVICE_TOKEN={v} then retry",
        ),
        ("sed-prefix", "2:API_SECRET={v}"),
    ] {
        let v = alnum(30);
        out.push(plain(
            "3 anywhere in a line",
            syntax.to_string(),
            template.replace("{v}", &v),
            v,
        ));
    }
}

/// Class 4: encoded secrets.
fn encoded(out: &mut Vec<Case>) {
    // 4: encoded secrets.
    for (syntax, inner) in [
        (
            "base64-jwt",
            format!(
                "{}.{}.{}",
                cat(&["ey", "JhbGciOiJIUzI1NiJ9"]),
                cat(&["ey", &b64url(40)]),
                b64url(43)
            ),
        ),
        ("base64-github-token", cat(&["gh", "p_", &alnum(36)])),
        ("base64-gitlab-token", cat(&["gl", "pat-", &alnum(20)])),
        (
            "base64-langfuse-pair",
            format!(
                "{}:{}",
                cat(&["pk", "-lf-", &uuid()]),
                cat(&["sk", "-lf-", &uuid()])
            ),
        ),
        (
            "base64-slack-token",
            cat(&["xo", "xb-", &digits(12), "-", &digits(12), "-", &alnum(24)]),
        ),
    ] {
        let encoded = base64_encode(inner.as_bytes());
        for template in [
            "{e}",
            "echo {e} | base64 -d",
            "value: {e}",
            "{\"blob\": \"{e}\"}",
        ] {
            out.push(Case {
                class: "4 encoded",
                syntax: format!("{syntax}/{template}"),
                before: None,
                text: template.replace("{e}", &encoded),
                secrets: vec![encoded.clone(), inner.clone()],
            });
        }
    }
    let user_pass = base64_encode(format!("deploy:{}", alnum(20)).as_bytes());
    out.push(Case {
        class: "4 encoded",
        syntax: "docker-config-auth".into(),
        before: None,
        text: format!("{{\"auths\": {{\"ghcr.io\": {{\"auth\": \"{user_pass}\"}}}}}}"),
        secrets: vec![user_pass.clone()],
    });
    for (syntax, template) in [
        (
            "k8s-yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\ndata:\n  username: {u}\n  api-url: {e}\n",
        ),
        (
            "k8s-yaml-list",
            "apiVersion: v1\nitems:\n- apiVersion: v1\n  data:\n    .dockerconfigjson: {e}\n    user: {u}\n  kind: Secret\n  metadata:\n    name: regcred\nkind: List\n",
        ),
        (
            "k8s-json",
            "{\n  \"apiVersion\": \"v1\",\n  \"data\": {\n    \"token\": \"{e}\",\n    \"user\": \"{u}\"\n  },\n  \"kind\": \"Secret\"\n}",
        ),
        (
            "k8s-string-data",
            "kind: Secret\nstringData:\n  connection: {e}\n  user: {u}\n",
        ),
    ] {
        let e = base64_encode(alnum(24).as_bytes());
        let u = base64_encode(format!("svc-{}", alnum(8)).as_bytes());
        out.push(Case {
            class: "4 encoded",
            syntax: syntax.into(),
            before: None,
            text: template.replace("{e}", &e).replace("{u}", &u),
            secrets: vec![e, u],
        });
    }
}

/// Class 5: identified by context, then repeated without it.
fn echoed(out: &mut Vec<Case>) {
    // 5: a value identified by its context, then repeated without one.
    for (syntax, context, echo) in [
        (
            "env-then-tool-output",
            "export SERVICE_TOKEN={v}",
            "$ printenv SERVICE_TOKEN\n{v}\n",
        ),
        (
            "json-then-answer",
            "{\"client_secret\": \"{v}\"}",
            "I found the value {v} in your config; rotate it.",
        ),
        (
            "yaml-then-grep",
            "db:\n  password: \"{v}\"",
            "grep -r {v} . returned 3 files",
        ),
        (
            "flag-then-log",
            "mytool --api-token {v}",
            "auth ok with {v}",
        ),
        (
            "header-then-echo",
            "Authorization: Bearer {v}",
            "token={{v}} echoed: \"{v}\"",
        ),
    ] {
        let v = alnum(26);
        out.push(Case {
            class: "5 echoed elsewhere",
            syntax: syntax.into(),
            before: Some(context.replace("{v}", &v)),
            text: echo.replace("{v}", &v),
            secrets: vec![v],
        });
    }
}

/// Class 6: glued to the word before.
fn glued(out: &mut Vec<Case>) {
    // 6: distinctive tokens glued to the word before.
    for (syntax, token) in [
        ("perplexity", cat(&["pp", "lx-", &alnum(48)])),
        ("github", cat(&["gh", "p_", &alnum(36)])),
        ("gitlab", cat(&["gl", "pat-", &alnum(20)])),
        ("xai", cat(&["xa", "i-", &alnum(80)])),
        ("groq", cat(&["gs", "k_", &alnum(52)])),
        ("anthropic", cat(&["sk", "-ant-api03-", &b64url(93), "AA"])),
        (
            "slack",
            cat(&["xo", "xb-", &digits(12), "-", &digits(12), "-", &alnum(24)]),
        ),
    ] {
        for glue in ["took 3 seconds", "id=abc", "\\n", "token:"] {
            out.push(plain(
                "6 glued",
                format!("{syntax}/{glue}"),
                format!("{glue}{token} done"),
                token.clone(),
            ));
        }
    }
}

/// Near-misses: text that looks like a secret to a careless rule and must stay as it is.
pub fn near_misses() -> Vec<String> {
    let mut out: Vec<String> = [
        "commit 3f9a1c2b7d8e4f5a6b7c8d9e0f1a2b3c4d5e6f7a",
        "request_id = \"01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00\"",
        "sha256sum: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "\"integrity\": \"sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==\"",
        "API_KEY=<your-api-key>",
        "api_key: \"<your-token>\"",
        "OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "token: xxxxxxxxxxxxxxxxxxxxxxxx",
        "password: \"********\"",
        "GITHUB_TOKEN=${{ secrets.GITHUB_TOKEN }}",
        "token = os.getenv(\"SERVICE_TOKEN\")",
        "const apiKey = process.env.API_KEY;",
        "apiKey: config.get('apiKey')",
        "password = getpass.getpass()",
        "version = \"1.2.3-beta.4\"",
        "hf_required_fields_for_model = [\"a\", \"b\"]",
        "GET /api/v1/tokens/refresh HTTP/1.1",
        "see https://example.com/docs/api-keys/rotate-your-keys",
        "max_tokens: 4096",
        "token_count = 1234",
        "\"total_tokens\": 5120",
        "keyboard = \"us\"",
        "public_key_id = \"key_2f9a1c\"",
        "password_file = \"/run/secrets/db_password\"",
        "TOKEN_URL=https://auth.example.com/oauth/token",
        "auth_type = \"oauth2\"",
        "the token is invalid; the password was rejected",
        "cache_key = \"user:42:profile\"",
        "primary_key = \"id\"",
        "key: Enter",
        "\"key\": \"ArrowUp\"",
        "sort_key = \"created_at\"",
        "partition_key = \"tenant_id\"",
        "tokenizer = \"cl100k_base\"",
        "eos_token = \"</s>\"",
        "secret_name = \"prod-db-credentials\"",
        "SECRET_ARN=arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod-db",
        "password_min_length = 12",
        "auth: required",
        "export PATH=/usr/local/bin:$PATH",
        "SSH_AUTH_SOCK=/run/user/1000/keyring/ssh",
        "ls -la ~/.ssh && cat ~/.ssh/id_ed25519.pub",
        "docker run -u 1000:1000 image",
        "if password == \"\" { return Err(MissingPassword) }",
        "def authenticate(user, password):\n    return check(password)",
        "let token = get_token(&config)?;",
        "<input type=\"password\" name=\"password\" placeholder=\"Password\">",
        "Use a Bearer token in the Authorization header.",
        "The secret to fast builds: cache everything.",
        "node-v20.11.1-linux-x64.tar.xz",
        "\"resolved\": \"https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz\"",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "monkey_patch = True",
        "bypass_cache: true",
        "passthrough = \"enabled\"",
        "author = \"Jane Doe\"",
        "signature_algorithm = \"RS256\"",
        "token_type: Bearer",
        "key_id: 7f3a9c",
        "session_id = \"sess_local\"",
        "password_reset_url = \"https://example.com/reset\"",
        "is_secret = false",
        "show_password: false",
        "uuid = \"550e8400-e29b-41d4-a716-446655440000\"",
        "git checkout 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "etag: \"33a64df551425fcc55e4d42a148795d9f25f89d4\"",
        "md5 = d41d8cd98f00b204e9800998ecf8427e",
        "The keyboard shortcut is Ctrl+K; the key is K.",
        "token limits: 200k context, 8k output",
        "PASSWORD_HASHER=argon2",
        "auth_provider = \"github\"",
        "credentials_path = \"~/.config/gcloud/credentials.json\"",
        "--password-stdin",
        "echo $DB_PASSWORD | docker login --password-stdin",
        "a secret-free sentence about tokens and keys",
        "tokens: 1,234 in / 567 out",
        "| token | meaning |\n| --- | --- |\n| max_tokens | the output budget |",
        "the password \"field\" is required",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    out.push(format!("build id {}", hex(40)));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::redact::{RedactCounts, Redactor};
    use super::super::secret_corpus::surroundings;
    use super::*;

    #[test]
    fn syntax_corpus_leaks_nothing_and_keeps_the_near_misses() {
        let mut table: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut leaks = Vec::new();
        let r = Redactor::builtin();
        for case in cases() {
            for (i, text) in surroundings(&case.text).into_iter().enumerate() {
                // Nothing learned from another case or surrounding may hide a miss.
                r.forget();
                if let Some(before) = &case.before {
                    r.redact(before, &mut RedactCounts::new());
                }
                let out = r.redact(&text, &mut RedactCounts::new());
                let entry = table.entry(case.class).or_default();
                entry.0 += 1;
                if case.secrets.iter().any(|s| out.contains(s.as_str())) {
                    entry.1 += 1;
                    leaks.push(format!("{} [{}#{i}]: {out:?}", case.class, case.syntax));
                }
            }
        }
        r.forget();
        let misses = near_misses();
        let changed: Vec<String> = misses
            .iter()
            .filter_map(|t| {
                let out = r.redact(t, &mut RedactCounts::new());
                (out != t.as_str()).then(|| format!("{t:?} -> {out:?}"))
            })
            .collect();
        println!("class                    samples  leaked");
        for (class, (n, leaked)) in &table {
            println!("{class:<24} {n:>7} {leaked:>7}");
        }
        println!(
            "near-misses              {:>7} {:>7} changed",
            misses.len(),
            changed.len()
        );
        for c in &changed {
            println!("changed: {c}");
        }
        assert!(
            leaks.is_empty(),
            "{} leaks:\n{}",
            leaks.len(),
            leaks.join("\n")
        );
        // Every near-miss stays (the bar is 95%; ours is all of them).
        assert!(changed.is_empty(), "changed:\n{}", changed.join("\n"));
    }
}

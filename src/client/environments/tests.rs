use super::*;

fn err(text: &str) -> String {
    Environments::parse(text, Some(Path::new("/home/u/.codex")))
        .unwrap_err()
        .to_string()
}

#[test]
fn every_validation_message() {
    let long = "a".repeat(65);
    let cases: Vec<(String, String)> = vec![
        ("[[environments]]\nid = \"a\"\n".into(), "environment `a` must set exactly one of url or program".into()),
        ("[[environments]]\nid = \"a\"\nurl = \"ws://h:1\"\nprogram = \"x\"\n".into(), "environment `a` must set exactly one of url or program".into()),
        ("[[environments]]\nid = \"a\"\nurl = \"ws://h:1\"\nargs = []\n".into(), "environment `a` args, env, and cwd require program".into()),
        ("[[environments]]\nid = \"a\"\nurl = \"ws://h:1\"\nenv = {}\n".into(), "environment `a` args, env, and cwd require program".into()),
        ("[[environments]]\nid = \"a\"\nurl = \"ws://h:1\"\ncwd = \"/x\"\n".into(), "environment `a` args, env, and cwd require program".into()),
        ("[[environments]]\nid = \"a\"\nprogram = \"x\"\nconnect_timeout_sec = 3\n".into(), "environment `a` connect_timeout_sec requires url".into()),
        ("[[environments]]\nid = \"local\"\nprogram = \"x\"\n".into(), "environment id `local` is reserved".into()),
        ("[[environments]]\nid = \"NoNe\"\nprogram = \"x\"\n".into(), "environment id `NoNe` is reserved".into()),
        ("[[environments]]\nid = \"bad id\"\nprogram = \"x\"\n".into(), "environment id `bad id` must contain only ASCII letters, numbers, '-' or '_'".into()),
        ("[[environments]]\nid = \"\"\nprogram = \"x\"\n".into(), "environment id cannot be empty".into()),
        ("[[environments]]\nid = \" a\"\nprogram = \"x\"\n".into(), "environment id ` a` must not contain surrounding whitespace".into()),
        (format!("[[environments]]\nid = \"{long}\"\nprogram = \"x\"\n"), format!("environment id `{long}` cannot be longer than 64 characters")),
        ("[[environments]]\nid = \"a\"\nprogram = \"x\"\n[[environments]]\nid = \"a\"\nprogram = \"y\"\n".into(), "environment id `a` is duplicated".into()),
        ("[[environments]]\nid = \"a\"\nprogram = \" \"\n".into(), "environment `a` program cannot be empty".into()),
        ("[[environments]]\nid = \"a\"\nurl = \"http://h\"\n".into(), "environment url `http://h` must use ws:// or wss://".into()),
        ("[[environments]]\nid = \"a\"\nurl = \" \"\n".into(), "environment url cannot be empty".into()),
        ("default = \"nope\"\n".into(), "default environment `nope` is not configured".into()),
        ("default = \" \"\n".into(), "default environment id cannot be empty".into()),
        ("default = \"local\"\ninclude_local = false\n".into(), "default environment `local` is not configured".into()),
    ];
    for (text, want) in cases {
        assert_eq!(err(&text), want, "for:\n{text}");
    }
}

#[test]
fn unknown_keys_are_rejected_at_both_levels() {
    let e = err("defaults = \"a\"\n");
    assert!(
        e.starts_with("failed to parse environment config ``: "),
        "{e}"
    );
    assert!(e.contains("unknown field `defaults`"), "{e}");
    let e = err("[[environments]]\nid = \"a\"\nprogram = \"x\"\nshell = true\n");
    assert!(e.contains("unknown field `shell`"), "{e}");
}

#[test]
fn a_full_entry_and_its_defaults() {
    let e = Environments::parse(
        "default = \" t \"\n[[environments]]\nid = \"t\"\nprogram = \" ssh \"\nargs = [\"h\", \"tether exec-server\"]\nenv = { B = \"2\", A = \"1\" }\ncwd = \"work\"\ninitialize_timeout_sec = 2.5\n[[environments]]\nid = \"w\"\nurl = \"wss://example.com/x\"\n",
        Some(Path::new("/home/u/.codex")),
    )
    .unwrap();
    assert_eq!(e.default, DefaultEnvironment::Id("t".into()));
    assert!(e.include_local);
    let t = &e.environments[0];
    assert_eq!(t.initialize_timeout, Duration::from_millis(2500));
    let Transport::Program(cmd) = &t.transport else {
        panic!("{t:?}")
    };
    assert_eq!(cmd.program, "ssh");
    assert_eq!(cmd.args, vec!["h", "tether exec-server"]);
    assert_eq!(
        cmd.env,
        vec![("A".into(), "1".into()), ("B".into(), "2".into())]
    );
    assert_eq!(cmd.cwd, Some(PathBuf::from("/home/u/.codex/work")));
    assert_eq!(
        e.environments[1].initialize_timeout,
        DEFAULT_INITIALIZE_TIMEOUT
    );
    assert!(matches!(e.environments[1].transport, Transport::Url { .. }));
    assert_eq!(e.select("local").unwrap(), Selected::Local);
    assert_eq!(e.select_default(), Some(Selected::Configured(t)));
    assert_eq!(
        e.select("x").unwrap_err().to_string(),
        "environment `x` is not configured"
    );
}

#[test]
fn defaults_without_local() {
    let e = Environments::parse("include_local = false\n", None).unwrap();
    assert_eq!(e.default, DefaultEnvironment::Disabled);
    assert!(e.select("local").is_err());
    let e = Environments::parse("default = \"None\"\n", None).unwrap();
    assert_eq!(e.default, DefaultEnvironment::Disabled);
    assert_eq!(
        Environments::parse("", None).unwrap(),
        Environments::default()
    );
    let e = Environments::parse(
        "[[environments]]\nid = \"a\"\nprogram = \"x\"\ncwd = \"rel\"\n",
        None,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "environment `a` cwd must be absolute");
}

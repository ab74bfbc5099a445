use std::collections::HashMap;

use serde_json::json;

use super::*;

fn env_with(args: &str) -> Env {
    let map: HashMap<&str, &str> = HashMap::from([
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/c1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
        ("CNI_ARGS", args),
    ]);
    Env::read(|k| map.get(k).map(|v| v.to_string())).unwrap()
}

fn parse(conf: Value) -> CniResult<NetConf> {
    NetConf::parse(conf.to_string().as_bytes(), &env_with(""))
}

fn base() -> Value {
    json!({"cniVersion": "1.0.0", "name": "n", "type": "pipework"})
}

fn with(key: &str, value: Value) -> Value {
    let mut conf = base();
    conf[key] = value;
    conf
}

#[test]
fn defaults_are_the_reference_defaults() {
    let c = parse(base()).unwrap();
    assert_eq!(c.bridge, "cni0");
    assert!(!c.is_gateway && !c.is_default_gateway && !c.force_address && !c.hairpin && !c.promisc);
    assert_eq!((c.mtu, c.vlan, c.ipam.as_deref(), c.mac), (None, None, None, None));
    assert!(c.prev_result.is_none() && c.dns.is_empty());
}

#[test]
fn every_reference_key_is_read() {
    let c = parse(json!({
        "cniVersion": "0.4.0", "name": "n", "type": "pipework", "bridge": "br9",
        "isDefaultGateway": true, "forceAddress": true, "ipMasq": false, "mtu": 1400,
        "hairpinMode": true, "promiscMode": true, "vlan": 100, "macspoofchk": false, "enabledad": true,
        "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"},
        "dns": {"nameservers": ["10.1.0.1"], "domain": "d", "search": ["s"], "options": ["ndots:2"]},
        "capabilities": {"mac": true, "ips": true},
        "runtimeConfig": {"mac": "02:00:00:00:00:09", "ips": ["10.1.0.9/24"]},
        "args": {"cni": {"mac": "02:00:00:00:00:08"}},
        "prevResult": {"cniVersion": "0.4.0", "interfaces": [{"name": "x"}]}
    }))
    .unwrap();
    assert_eq!(c.version, Version::V0_4_0);
    assert_eq!(c.bridge, "br9");
    assert!(c.is_gateway, "isDefaultGateway implies isGateway");
    assert!(c.force_address && c.hairpin && c.promisc && c.enable_dad);
    assert_eq!((c.mtu, c.vlan, c.ipam.as_deref()), (Some(1400), Some(100), Some("host-local")));
    assert_eq!(c.dns.options, vec!["ndots:2"]);
    assert_eq!(c.mac.unwrap().to_string(), "02:00:00:00:00:09");
    assert_eq!(c.prev_result.unwrap().interfaces[0].name, "x");
}

#[test]
fn mac_precedence_runtime_config_then_args_then_cni_args() {
    let env = env_with("IgnoreUnknown=1;MAC=02:00:00:00:00:01;K8S_POD_NAME=p");
    let mac_of =
        |conf: Value| NetConf::parse(conf.to_string().as_bytes(), &env).unwrap().mac.unwrap().to_string();
    assert_eq!(mac_of(base()), "02:00:00:00:00:01");
    assert_eq!(mac_of(with("args", json!({"cni": {"mac": "02:00:00:00:00:02"}}))), "02:00:00:00:00:02");
    let mut both = with("args", json!({"cni": {"mac": "02:00:00:00:00:02"}}));
    both["runtimeConfig"] = json!({"mac": "02:00:00:00:00:03"});
    assert_eq!(mac_of(both), "02:00:00:00:00:03");
}

#[test]
fn cni_args_unknown_keys_need_ignore_unknown() {
    let e = NetConf::parse(base().to_string().as_bytes(), &env_with("K8S_POD_NAME=p")).unwrap_err();
    assert_eq!((e.code, e.msg.as_str()), (4, "CNI_ARGS: unknown args [\"K8S_POD_NAME\"]"));
    let e = NetConf::parse(base().to_string().as_bytes(), &env_with("MAC=zz")).unwrap_err();
    assert_eq!((e.code, e.msg.as_str()), (4, "CNI_ARGS MAC \"zz\" is not a unicast MAC address"));
}

#[test]
fn unimplemented_keys_are_refused_with_code_2() {
    for (key, value) in [
        ("ipMasqBackend", json!("iptables")),
        ("vlanTrunk", json!([{"id": 5}])),
        ("preserveDefaultVlan", json!(false)),
        ("disableContainerInterface", json!(true)),
        ("portIsolation", json!(true)),
    ] {
        let e = parse(with(key, value.clone())).unwrap_err();
        assert_eq!((e.code, e.msg.clone()), (2, format!("unsupported field \"{key}\": {value}")));
        assert!(!e.details.is_empty());
    }
    for (key, value) in
        [("ipMasqBackend", json!("nftables")), ("vlanTrunk", json!([])), ("preserveDefaultVlan", json!(true))]
    {
        assert!(parse(with(key, value)).is_ok(), "{key}");
    }
}

#[test]
fn ip_masq_and_macspoofchk_are_read() {
    let conf = parse(with("ipMasq", json!(true))).unwrap();
    assert!(conf.ip_masq && !conf.mac_spoof_check);
    let conf = parse(with("macspoofchk", json!(true))).unwrap();
    assert!(!conf.ip_masq && conf.mac_spoof_check);
    assert_eq!(parse(with("ipMasq", json!("yes"))).unwrap_err().code, 7);
}

#[test]
fn unknown_keys_are_ignored_like_the_reference() {
    assert!(parse(with("somethingElse", json!({"a": 1}))).is_ok());
}

#[test]
fn bad_values_are_invalid_config() {
    let msg = |conf: Value| {
        let e = parse(conf).unwrap_err();
        assert_eq!(e.code, 7, "{e}");
        e.msg
    };
    assert_eq!(msg(with("mtu", json!("1400"))), "\"mtu\" is \"1400\", not a whole number from 0 to 65535");
    assert_eq!(msg(with("mtu", json!(40))), "\"mtu\" 40 is below the minimum of 68");
    assert_eq!(msg(with("vlan", json!(4095))), "\"vlan\" is 4095, not a whole number from 0 to 4094");
    assert_eq!(msg(with("isGateway", json!("yes"))), "\"isGateway\" is \"yes\", not true or false");
    assert_eq!(
        msg(with("bridge", json!("a-bridge-name-too-long"))),
        "\"bridge\" \"a-bridge-name-too-long\" is not an interface name"
    );
    assert_eq!(msg(with("ipam", json!({"subnet": "10.0.0.0/8"}))), "\"ipam\" has settings but no \"type\"");
    assert_eq!(msg(with("ipam", json!({"type": "../sh"}))), "IPAM type \"../sh\" is not a plugin name");
    assert_eq!(
        msg(with("runtimeConfig", json!({"mac": "U:x"}))),
        "runtimeConfig.mac \"U:x\" is not a unicast MAC address"
    );
    assert_eq!(
        msg(with("cni.dev/valid-attachments", json!([{"containerID": "a"}]))),
        "\"cni.dev/valid-attachments\" is not a list of {\"containerID\", \"ifname\"} objects"
    );
}

#[test]
fn version_and_decoding_errors() {
    let e = parse(json!({"name": "n"})).unwrap_err();
    assert_eq!(e.code, 1);
    let e = parse(with("cniVersion", json!("0.2.0"))).unwrap_err();
    assert_eq!(e.code, 1);
    let e = NetConf::parse(b"{\"cniVersion\":", &env_with("")).unwrap_err();
    assert_eq!((e.code, e.msg.as_str()), (6, "failed to decode network configuration"));
    assert_eq!(version_hint(b"{\"cniVersion\":\"0.4.0\"}"), "0.4.0");
    assert_eq!(version_hint(b"junk"), "1.1.0");
}

#[test]
fn gc_attachments() {
    let c =
        parse(with("cni.dev/valid-attachments", json!([{"containerID": "a", "ifname": "eth0"}]))).unwrap();
    assert_eq!(c.valid_attachments, vec![Attachment { container_id: "a".into(), ifname: "eth0".into() }]);
}

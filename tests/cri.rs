//! pipework as a Kubernetes node's CNI plugin: containerd's CRI runs pods
//! on a `"type": "pipework"` network as a kubelet asks it to.

mod common;

use common::{Cri, Ns};
use serde_json::json;

#[test]
fn smoke() {
    let cri = Cri::start(|cri| {
        json!({"cniVersion": "1.0.0", "name": "testnet", "plugins": [{
            "type": "bridge", "bridge": "cni0", "isGateway": true,
            "ipam": {"type": "host-local", "dataDir": cri.ipam_dir(), "ranges": [[{"subnet": "10.88.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}
        }]})
    });
    eprintln!("{:?}", cri.version());
    let pod = cri.run_pod("a", vec![]);
    eprintln!("{:?}", cri.status(&pod));
    let ns = cri.pod_ns(&pod);
    eprintln!("{}", ns.ip(&["addr"]));
    let c = cri.container(&pod, "c");
    eprintln!("{:?}", cri.exec(&c, &["ip", "addr"]));
}

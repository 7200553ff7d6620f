"""The twin's Kubernetes control plane: what real kubectl and the official Python client talk to.

Modules, one concern each:

- `store`      one cluster's objects, resourceVersions, watch history and mutation log (etcd + watch cache)
- `objects`    builders of schema-complete objects (node, pod, daemonset, replicaset, deployment,
               poddisruptionbudget, namespace, core and events.k8s.io events, Status) and the helpers
               `set_node_condition`, `set_node_gpus`, `set_pod_ready`, `pod_is_ready`
- `api`        `build_kube_app(store, exec_handler=..., proxy_handler=..., deletion_grace_seconds=...)`
- `discovery`  /version, /api, /apis and the APIResourceLists (incl. `pods/eviction` in group policy)
- `selectors`  label and field selector grammar
- `patch`      strategic merge, JSON merge and JSON patch
- `disruption` PodDisruptionBudget arithmetic and the eviction decision, shared by the API and controllers
- `tables`     server-side printing for kubectl (meta.k8s.io/v1 Table)
- `exec`       `ExecResult` and the websocket channel protocol (v5/v4.channel.k8s.io)
- `kubeconfig` a kubeconfig with one context per cluster
- `testing`    `serve_in_thread(app) -> (base_url, stop)` and the uvicorn settings twin servers need
"""

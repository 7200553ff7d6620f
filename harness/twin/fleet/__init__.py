"""The fleet: what an EC2 instance becomes once it runs. GPUs with DCGM field caches (dcgm), the
dcgm-exporter text (exporter), nccl-tests traffic on EFA (nccl), the node boot state machine and the
AWS hooks (runtime), the Kubernetes objects the fleet emits (kobjects), and what runs inside pods when
the API server execs or proxies into them (handlers)."""

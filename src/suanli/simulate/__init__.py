"""Serving under traffic: a discrete-event simulator of LLM serving engines (DESIGN.md §3.7).

``workload`` makes the requests, ``kv_blocks`` is the paged KV cache, ``sequence`` a request's state,
``scheduler`` one policy per engine, ``engine`` the step loop of one replica, ``run`` the deployment
(replicas, router, prefill/decode disaggregation) and ``metrics`` what a benchmark client reports. Every
step's time comes from the same per-op roofline as ``suanli infer`` (``simulate/cost.py``).
"""

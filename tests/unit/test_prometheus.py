from harness.prometheus import parse_samples

TEXT = """# HELP DCGM_FI_DEV_ECC_DBE_VOL_TOTAL Total number of double-bit volatile ECC errors.
# TYPE DCGM_FI_DEV_ECC_DBE_VOL_TOTAL counter
DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{gpu="0"} 1
# TYPE nv_inference_request_success counter
nv_inference_request_success_total{model="m"} 5
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0"} 45
"""


def test_counter_names_are_kept_as_exposed():
    names = {s.name: s.value for s in parse_samples(TEXT)}
    assert names == {"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": 1, "nv_inference_request_success_total": 5,
                     "DCGM_FI_DEV_GPU_TEMP": 45}

from edgebench.harness.analysis.families import pareto


def test_pareto_keeps_only_undominated_options():
    variants = {
        "fp32": (10.0, -0.97),
        "int8": (4.0, -0.96),
        "fp16": (9.0, -0.97),
        "bad": (12.0, -0.90),
        "tie": (4.0, -0.96),
    }
    front = pareto(sorted(variants), key=lambda name: variants[name])
    assert front == ["fp16", "int8", "tie"]  # fp32 is beaten by fp16; equal scores both stay

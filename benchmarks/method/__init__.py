"""Method experiments: ablations, studies, the gate, calibration, learning curves."""

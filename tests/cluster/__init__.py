"""Real-cluster tests: a real Slurm + sshd sandbox on loopback (see harness.py)."""

"""The core toolkit every layer uses: configuration, the machine card, timing, traces,
the watchdog and calibrated workloads. Standard library only: worker processes import it."""

"""QIDO-RS (PS3.18 10.6): search for studies, series and instances."""


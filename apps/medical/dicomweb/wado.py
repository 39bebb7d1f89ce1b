"""WADO-RS (PS3.18 10.4): retrieve instances, metadata, frames, rendered images and bulk data."""


"""DICOMweb (DICOM PS3.18) on the organization's archive: STOW-RS, QIDO-RS, WADO-RS."""

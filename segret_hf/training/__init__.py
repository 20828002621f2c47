"""Training SegRet with the Hugging Face Trainer: data, augmentation, optimisation, evaluation."""

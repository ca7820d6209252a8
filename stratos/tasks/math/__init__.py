"""Math reasoning tasks (GSM8K, AIME): loaders, answer extraction, grading, offline generator.

    from stratos.tasks.math.task import GSM8KTask, AimeTask        # +task=gsm8k / +task=aime
    from stratos.tasks.math.extract import extract_answer, extract_aime
    from stratos.tasks.math.grading import is_correct, majority_vote, vote, breakdown
"""

"""metasdf: MetaSDF models, training and evaluation on sdfkit stores.

Empty for now: the trainer and evaluator are tracked as their own issues (``sdfkit train`` /
``sdfkit eval``). sdfkit's data library does not depend on this package.
"""

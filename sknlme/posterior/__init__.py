"""sknlme.posterior"""

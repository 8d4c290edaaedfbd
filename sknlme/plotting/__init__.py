"""sknlme.plotting"""

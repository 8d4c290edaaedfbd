"""sknlme.population"""

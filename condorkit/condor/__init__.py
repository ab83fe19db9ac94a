"""condor"""
